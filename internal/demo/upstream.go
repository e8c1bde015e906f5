package demo

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// echo is the demo's upstream API: it answers with who called it,
// as the gateway told it (encoding/json sorts the header names).
func echo(w http.ResponseWriter, r *http.Request) {
	headers := map[string]string{}
	for k, v := range r.Header {
		if strings.HasPrefix(k, "X-Tokenguard-") {
			headers[k] = strings.Join(v, ", ")
		}
	}
	body, _ := json.MarshalIndent(struct {
		Message string            `json:"message"`
		Method  string            `json:"method"`
		Path    string            `json:"path"`
		Headers map[string]string `json:"headers"`
		Time    string            `json:"time"`
	}{"hello from the example upstream", r.Method, r.URL.Path, headers, time.Now().UTC().Format(time.RFC3339)}, "", "  ")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(body, '\n'))
}

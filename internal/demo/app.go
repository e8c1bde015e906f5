package demo

import (
	_ "embed"
	"net/http"
)

// The browser app of "tokenguard demo --bff": one page and its script,
// no other resource.
var (
	//go:embed app/index.html
	appHTML []byte
	//go:embed app/app.js
	appJS []byte
)

// appCSP is the page's Content-Security-Policy: its own script only, no
// inline script or style, requests to its own origin only, never framed.
const appCSP = "default-src 'none'; script-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// appHandler is the public origin of "tokenguard demo --bff", as a real
// deployment puts a static host and the gateway behind one origin: it
// serves the app's page at GET / and its script at GET /app.js, and
// passes every other request (the token handler's /bff/..., the API's
// /api/...) to the gateway's handler. The page must load without a
// session, and every gateway route requires a token: that is why the app
// is served here and not by the upstream.
func appHandler(gw http.Handler) http.Handler {
	page := static("text/html; charset=utf-8", appHTML)
	script := static("text/javascript; charset=utf-8", appJS)
	// Not a ServeMux: it would clean and redirect paths before the
	// gateway's own request hygiene sees them.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.RawPath == "" {
			switch r.URL.Path {
			case "/":
				page(w, r)
				return
			case "/app.js":
				script(w, r)
				return
			}
		}
		gw.ServeHTTP(w, r)
	})
}

// static serves body with the app's security headers.
func static(contentType string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Content-Security-Policy", appCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(body)
	}
}

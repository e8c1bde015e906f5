package introspect_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/tokenguard/tokenguard/introspect"
)

func ExampleClient_Introspect() {
	// A stand-in authorization server: one token is active.
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != "rs" || secret != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.PostFormValue("token") == "good-token" {
			fmt.Fprint(w, `{"active":true,"iss":"https://as.example.com","aud":"https://api.example.com","sub":"alice","scope":"orders:read"}`)
			return
		}
		fmt.Fprint(w, `{"active":false}`)
	}))
	defer as.Close()

	c, err := introspect.New(introspect.Config{
		Endpoint:     as.URL + "/introspect", // http is accepted only for loopback
		Issuer:       "https://as.example.com",
		Audience:     "https://api.example.com",
		ClientID:     "rs",
		ClientSecret: "s3cret",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	ctx := context.Background()
	if r, err := c.Introspect(ctx, "good-token"); err == nil {
		fmt.Println(r.Subject, r.Scope)
	}
	_, err = c.Introspect(ctx, "revoked-token")
	switch {
	case errors.Is(err, introspect.ErrInactive):
		fmt.Println("401 invalid_token")
	case err != nil:
		fmt.Println("503") // ErrUnavailable or ErrInvalidResponse: fail closed
	}
	// Output:
	// alice orders:read
	// 401 invalid_token
}

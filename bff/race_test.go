package bff_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/bff"
)

// TestRefreshWaitersOwnTheirSession: the requests that wait for one
// refresh each get their own copy of the session, which their slide then
// writes (go test -race finds a shared one).
func TestRefreshWaitersOwnTheirSession(t *testing.T) {
	e := newEnv(t, nil)
	e.expireSoon(t)
	b := newBrowser(t)
	b.login(e, "")
	e.is.SetAccessTokenTTL(time.Hour)
	e.advance(70 * time.Second)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", e.app.URL+"/orders", nil)
			req.Header.Set("X-CSRF", "1")
			req.AddCookie(&http.Cookie{Name: bff.SessionCookie, Value: b.Cookies[bff.SessionCookie]})
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
}

// Package browsertest holds the end-to-end tests of the token handler in
// a real browser: headless Chromium, driven over the DevTools protocol by
// chromedp, runs "tokenguard demo --bff" (started in-process) the way a
// user would: it opens the printed URL, logs in at the development
// issuer, calls the API through the gateway, and logs out. From inside
// the page it checks that no token and no readable session cookie ever
// reach the browser's scripts or storage, and over the protocol it checks
// the session cookie's attributes.
//
// Other tests hold the token handler's callbacks in the browser (the
// DevTools Fetch domain) to log in from two tabs at once and let the
// callbacks go in the other order; run a silent login (prompt=none) with
// and without a session at the issuer (demo.Demo.SetLoginRequired); and
// read the session's expiry with and without ?slide=false a minute after
// a login, which makes that test last a little over a minute.
//
// TestBrowserCORS runs the gateway with a cors block and calls it with
// fetch() from pages on two other loopback origins, one allowed: from the
// allowed one, the preflight a token forces is answered by the gateway,
// the page reads the upstream's answer, and of a denial its status, its
// WWW-Authenticate and its DPoP-Nonce (which it then retries with); from
// the other, the preflight is refused, fetch throws, and a recording
// upstream shows that nothing was forwarded.
//
// It has no API; everything is in its tests. The tests need a Chromium or
// Chrome binary (chromium, chromium-browser or google-chrome on PATH; .ci/run
// installs Debian's chromium) and are skipped only when there is none. With
// TOKENGUARD_ARTIFACTS set to a directory, they write screenshots there
// (browser-*.png: the logged-in page, both tabs after their logins, the page
// after a silent login without and with a session at the issuer, the
// allowed origin's page after the CORS calls), and one of every tab as it
// was when a test failed.
package browsertest

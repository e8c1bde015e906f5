// Package browsertest holds the end-to-end test of the token handler in a
// real browser: headless Chromium, driven over the DevTools protocol by
// chromedp, runs "tokenguard demo --bff" (started in-process) the way a
// user would: it opens the printed URL, logs in at the development
// issuer, calls the API through the gateway, and logs out. From inside
// the page it checks that no token and no readable session cookie ever
// reach the browser's scripts or storage, and over the protocol it checks
// the session cookie's attributes.
//
// It has no API; everything is in its test. The test needs a Chromium or
// Chrome binary (chromium, chromium-browser or google-chrome on PATH; .ci/run
// installs Debian's chromium) and is skipped only when there is none. With
// TOKENGUARD_ARTIFACTS set to a directory, it writes a screenshot of the
// logged-in page there, and one of the page as it was when a test failed.
package browsertest

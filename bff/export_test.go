package bff

// LoginCookieName is loginCookieName, for the external tests.
var LoginCookieName = loginCookieName

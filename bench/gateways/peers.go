package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/bench/internal/loadkit"
)

// Gateway names, as they appear in gateways.json.
const (
	gwBare       = "bare-proxy"
	gwNginx      = "nginx"
	gwTokenguard = "tokenguard"
	gwOAuth2     = "oauth2-proxy"
	gwModOAuth2  = "mod_oauth2"
	gwHAProxy    = "haproxy"
)

// Scenario names, as they appear in gateways.json.
const (
	scPassthrough    = "passthrough"
	scBearerCached   = "bearer-cached"
	scBearerUncached = "bearer-uncached"
	scDPoP           = "dpop"
	scInvalid        = "invalid"
)

// allScenarios is the order of scenarios in the report.
var allScenarios = []string{scPassthrough, scBearerCached, scBearerUncached, scDPoP, scInvalid}

// peerSpec describes one gateway under comparison.
type peerSpec struct {
	name string
	// floor: authenticates nothing (measured with passthrough only).
	floor bool
	// scenarios it is measured with; the others of allScenarios that a
	// non-floor peer lacks are reported as not supported.
	scenarios []string
	// unsupported says why a scenario is missing, by scenario.
	unsupported map[string]string
	// refuseStatuses are the statuses a refusal may have.
	refuseStatuses []int
	// setsIdentity: the upstream must see the token's subject in
	// loadkit.IdentityHeader, in place of the client's forged one.
	setsIdentity bool
	// notes are printed under the table.
	notes []string
}

// specs lists the gateways in report order.
var specs = []*peerSpec{
	{
		name: gwBare, floor: true, scenarios: []string{scPassthrough},
		notes: []string{"floor: `httputil.ReverseProxy` with the gateway's Transport settings (bench/internal/loadkit.BareProxy), no authentication."},
	},
	{
		name: gwNginx, floor: true, scenarios: []string{scPassthrough},
		notes: []string{"floor: nginx as a plain reverse proxy (upstream keepalive 64, access_log off, 2 worker processes), no authentication."},
	},
	{
		name: gwTokenguard, scenarios: []string{scBearerCached, scBearerUncached, scDPoP, scInvalid},
		refuseStatuses: []int{http.StatusUnauthorized}, setsIdentity: true,
		notes: []string{"checks signature (JWKS fetched over loopback), `typ` at+jwt, `alg` allow-list, `iss`, `aud`, `exp`/`nbf`/`iat`, the route's scope (`orders:read`), DPoP proofs (RFC 9449) and the DPoP binding; refusals must be exactly 401, and the upstream must see the token's subject in X-Tokenguard-Subject in place of the client's forged one. Token cache on (the default); bearer-uncached sends a never-seen token on every request."},
	},
	{
		name: gwOAuth2, scenarios: []string{scBearerCached, scBearerUncached, scInvalid},
		unsupported:    map[string]string{scDPoP: "not supported: oauth2-proxy has no DPoP (RFC 9449) support"},
		refuseStatuses: []int{http.StatusUnauthorized, http.StatusForbidden},
		notes:          []string{"oauth2-proxy v7 with `--skip-jwt-bearer-tokens`, `--extra-jwt-issuers=ISSUER=AUDIENCE` and the OIDC provider on the same issuer (discovery document served by the bench's issuer; `--client-id` = the audience) — checks signature (JWKS), `iss`, `aud`, `exp`; not `typ`, not scopes. It has no verified-token cache: every request verifies the signature. With `--bearer-token-login-fallback=false` a bad JWT gets 403 and a missing one 401; an invalid token is tried against both verifiers (the provider's and the extra issuer's), as oauth2-proxy does when both are configured."},
	},
	{
		name: gwModOAuth2, scenarios: []string{scBearerCached, scBearerUncached, scInvalid},
		unsupported:    map[string]string{scDPoP: "not measured: mod_oauth2 has a `type=dpop` verify option, outside this comparison's scope"},
		refuseStatuses: []int{http.StatusUnauthorized, http.StatusForbidden},
		notes:          []string{"Apache httpd (mpm_event, 2 processes × 32 threads) with mod_oauth2: `OAuth2TokenVerify jwks_uri` (JWKS fetched over loopback) checks signature and `exp`; `iss` and `aud` through `Require oauth2_claim` in a `<RequireAll>`; not `typ`, not scopes. Its token cache (shm, the default) holds verified tokens, like tokenguard's."},
	},
	{
		name: gwHAProxy, scenarios: []string{scBearerCached, scBearerUncached, scInvalid},
		unsupported:    map[string]string{scDPoP: "not supported: HAProxy has no DPoP support"},
		refuseStatuses: []int{http.StatusUnauthorized},
		notes:          []string{"HAProxy `jwt_verify` with a static PEM public key: HAProxy cannot fetch a JWKS, so key rotation needs a config reload. ACLs check `alg` (ES256), `iss`, `aud` (exact string), `exp` (> now, no leeway) with `jwt_header_query`/`jwt_payload_query`; not `typ`, not `nbf`, not scopes. No token cache: every valid request verifies the signature. The claim ACLs run before `jwt_verify`, so of the invalid mix only the tampered signature costs a signature check; the others are refused on a claim."},
	},
}

func specByName(name string) *peerSpec {
	for _, s := range specs {
		if s.name == name {
			return s
		}
	}
	return nil
}

// env is what every peer's configuration refers to.
type env struct {
	dir      string // private temporary directory for configs, logs, pids
	upstream string // 127.0.0.1:port
	issuer   string // http://127.0.0.1:port
	audience string
	pemPath  string // the issuer's public key, PEM (for HAProxy)
	root     bool   // running as root: servers that drop privileges need a user
}

// peerStartup bounds the wait for a peer to answer its first request.
const peerStartup = 30 * time.Second

// startAttempts: a free port can be taken between probing and binding.
const startAttempts = 3

// launch is one way of starting a peer on listen: the command, whether it
// forks workers (process group), and the URL that answers once it is up.
type launch struct {
	cmd     *exec.Cmd
	group   bool
	readyAt string
	ready   func(status int) bool
}

// anyStatus accepts any HTTP answer as "up".
func anyStatus(int) bool { return true }

// startPeer starts a peer through mk on a free port (retrying a port
// taken in the meantime) and returns it with its base URL.
func startPeer(ctx context.Context, name string, mk func(listen string) (launch, error)) (*loadkit.Child, string, error) {
	var lastErr error
	for range startAttempts {
		listen, err := loadkit.FreeAddr()
		if err != nil {
			return nil, "", err
		}
		l, err := mk(listen)
		if err != nil {
			return nil, "", err
		}
		c, _, err := loadkit.StartCmd(name, l.cmd, l.group)
		if err != nil {
			return nil, "", err
		}
		err = loadkit.WaitHTTP(ctx, c, l.readyAt, peerStartup, l.ready)
		if err == nil {
			return c, "http://" + listen, nil
		}
		c.Stop()
		lastErr = err
		out := strings.ToLower(c.Out.String())
		if !strings.Contains(out, "address already in use") && !strings.Contains(out, "cannot bind") {
			break
		}
	}
	return nil, "", lastErr
}

// nginxConfig renders nginx's configuration: a plain reverse proxy.
func nginxConfig(e env, listen string) string {
	user := ""
	if e.root {
		user = "user nobody nogroup;\n"
	}
	return fmt.Sprintf(`# Written by bench/gateways for one run.
daemon off;
master_process on;
worker_processes 2;
%[1]spid %[2]s/nginx.pid;
error_log %[2]s/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[2]s/nginx-body;
    proxy_temp_path %[2]s/nginx-proxy;
    fastcgi_temp_path %[2]s/nginx-fastcgi;
    uwsgi_temp_path %[2]s/nginx-uwsgi;
    scgi_temp_path %[2]s/nginx-scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    upstream up {
        server %[3]s;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen %[4]s;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
    }
}
`, user, e.dir, e.upstream, listen)
}

func nginxLaunch(bin string, e env) func(string) (launch, error) {
	return func(listen string) (launch, error) {
		conf := filepath.Join(e.dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(nginxConfig(e, listen)), 0o644); err != nil {
			return launch{}, err
		}
		cmd := exec.Command(bin, "-e", filepath.Join(e.dir, "nginx-error.log"), "-p", e.dir, "-c", conf)
		return launch{cmd: cmd, group: true, readyAt: "http://" + listen + "/", ready: anyStatus}, nil
	}
}

// haproxyConfig renders HAProxy's configuration: JWT checks with ACLs and
// jwt_verify against a static PEM key, cheap checks first.
func haproxyConfig(e env, listen string) string {
	return fmt.Sprintf(`# Written by bench/gateways for one run.
global
    maxconn 4096
    nbthread 2

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    option http-keep-alive

frontend fe
    bind %[1]s
    http-request set-var(txn.bearer) http_auth_bearer
    http-request deny deny_status 401 unless { var(txn.bearer) -m found }
    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
    http-request set-var(txn.iss) var(txn.bearer),jwt_payload_query('$.iss')
    http-request set-var(txn.aud) var(txn.bearer),jwt_payload_query('$.aud')
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
    http-request set-var(txn.now) date()
    http-request deny deny_status 401 unless { var(txn.alg) -m str ES256 }
    http-request deny deny_status 401 unless { var(txn.iss) -m str %[2]s }
    http-request deny deny_status 401 unless { var(txn.aud) -m str %[3]s }
    http-request deny deny_status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.alg,"%[4]s") -m int 1 }
    default_backend be

backend be
    http-reuse always
    server up %[5]s
`, listen, e.issuer, e.audience, e.pemPath, e.upstream)
}

func haproxyLaunch(bin string, e env) func(string) (launch, error) {
	return func(listen string) (launch, error) {
		conf := filepath.Join(e.dir, "haproxy.cfg")
		if err := os.WriteFile(conf, []byte(haproxyConfig(e, listen)), 0o644); err != nil {
			return launch{}, err
		}
		cmd := exec.Command(bin, "-db", "-f", conf)
		return launch{cmd: cmd, group: true, readyAt: "http://" + listen + "/", ready: anyStatus}, nil
	}
}

// apacheConfig renders httpd's configuration for mod_oauth2.
func apacheConfig(e env, listen, modules string) string {
	user := ""
	if e.root {
		user = "User www-data\nGroup www-data\n"
	}
	return fmt.Sprintf(`# Written by bench/gateways for one run.
ServerRoot "%[1]s"
ServerName 127.0.0.1
Listen %[2]s
PidFile %[1]s/apache.pid
ErrorLog %[1]s/apache-error.log
LogLevel error
DefaultRuntimeDir %[1]s
Mutex file:%[1]s default
%[3]s
LoadModule mpm_event_module %[4]s/mod_mpm_event.so
LoadModule authn_core_module %[4]s/mod_authn_core.so
LoadModule authz_core_module %[4]s/mod_authz_core.so
LoadModule authz_user_module %[4]s/mod_authz_user.so
LoadModule proxy_module %[4]s/mod_proxy.so
LoadModule proxy_http_module %[4]s/mod_proxy_http.so
LoadModule oauth2_module %[4]s/mod_oauth2.so

StartServers 2
ServerLimit 2
ThreadLimit 32
ThreadsPerChild 32
MaxRequestWorkers 64
MinSpareThreads 32
MaxSpareThreads 64
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 60

<Location "/">
    AuthType oauth2
    OAuth2TokenVerify jwks_uri %[5]s/jwks verify.exp=required&verify.iat=skip
    <RequireAll>
        Require valid-user
        Require oauth2_claim iss:%[5]s
        Require oauth2_claim aud:%[6]s
    </RequireAll>
</Location>
ProxyPass "/" "http://%[7]s/"
`, e.dir, listen, user, modules, e.issuer, e.audience, e.upstream)
}

// apacheModules is where Debian installs httpd's modules.
const apacheModules = "/usr/lib/apache2/modules"

func apacheLaunch(bin string, e env) func(string) (launch, error) {
	return func(listen string) (launch, error) {
		conf := filepath.Join(e.dir, "httpd.conf")
		if err := os.WriteFile(conf, []byte(apacheConfig(e, listen, apacheModules)), 0o644); err != nil {
			return launch{}, err
		}
		cmd := exec.Command(bin, "-d", e.dir, "-f", conf, "-DFOREGROUND")
		return launch{cmd: cmd, group: true, readyAt: "http://" + listen + "/", ready: anyStatus}, nil
	}
}

// oauth2ProxyArgs returns oauth2-proxy's command line: JWT bearer tokens
// from the issuer, verified against its JWKS (found by OIDC discovery),
// no login flow used. The secrets are fixed test values.
func oauth2ProxyArgs(e env, listen string) []string {
	return []string{
		"--http-address=" + listen,
		"--upstream=http://" + e.upstream + "/",
		"--provider=oidc",
		"--oidc-issuer-url=" + e.issuer,
		"--client-id=" + e.audience,
		"--client-secret=bench-client-secret",
		"--cookie-secret=0123456789abcdef0123456789abcdef",
		"--cookie-secure=false",
		"--email-domain=*",
		"--skip-jwt-bearer-tokens=true",
		"--extra-jwt-issuers=" + e.issuer + "=" + e.audience,
		"--bearer-token-login-fallback=false",
		"--force-json-errors=true",
		"--redirect-url=http://" + listen + "/oauth2/callback",
		"--request-logging=false",
		"--auth-logging=false",
		"--standard-logging=false",
	}
}

func oauth2ProxyLaunch(bin string, e env) func(string) (launch, error) {
	return func(listen string) (launch, error) {
		cmd := exec.Command(bin, oauth2ProxyArgs(e, listen)...)
		return launch{cmd: cmd, readyAt: "http://" + listen + "/ping", ready: func(s int) bool { return s == http.StatusOK }}, nil
	}
}

package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// ErrNotFromFile is ReloadConfig's answer for a gateway whose
// configuration was not loaded from a file (ParseConfig).
var ErrNotFromFile = errors.New("gateway: the configuration was not loaded from a file (LoadConfig): nothing to read again")

// errClosed is Reload's answer once Shutdown has begun.
var errClosed = errors.New("gateway: shut down")

// ReloadConfig reads the configuration file again (with the environment
// LoadConfig was given) and reloads it as Reload does; with a tls block,
// the certificate files are read again too. It is what SIGHUP and
// config_reload_interval do. The result is logged and counted in
// tokenguard_config_reloads_total{result}.
func (g *Gateway) ReloadConfig(ctx context.Context) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	if g.closed {
		return errClosed
	}
	c := g.gen.Load().cfg
	if !c.fromFile {
		return g.reloaded(ErrNotFromFile, c, nil)
	}
	// LoadConfig reports every mistake of the new file at once, as
	// "tokenguard check" does, not those of its first phase only.
	next, err := LoadConfig(c.File, c.env)
	if err != nil {
		return g.reloaded(err, c, nil)
	}
	return g.reloadLocked(ctx, next.c)
}

// Reload replaces the running configuration with cfg, without dropping a
// request: it builds the guard, token handler and proxy of cfg next to
// the running ones, waits up to cfg's startup_wait for their issuers'
// keys, then makes them serve every new request at once. Requests already
// running finish on the configuration they started with, whose resources
// are released when the last of them ends. Listeners keep their sockets.
//
// What the old configuration knew carries over: DPoP proofs already used
// stay used (when dpop.replay_store changes, the store in use is still
// asked until its proofs have expired), in-memory sessions and logins in
// progress survive, issued DPoP nonces stay valid, and the metrics count
// on.
//
// The running configuration stays, and the error says why, when cfg
// changes a key that cannot change while running (listen,
// metrics_listen, turning tls on or off, a max_token_size that needs a
// larger header limit than the listener has), when building it fails (a
// *ConfigError naming the line), or when its issuers' keys do not load
// within startup_wait while the running configuration's have. Each
// attempt is logged and counted in tokenguard_config_reloads_total.
func (g *Gateway) Reload(ctx context.Context, cfg *Config) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	return g.reloadLocked(ctx, cfg.c)
}

func (g *Gateway) reloadLocked(ctx context.Context, next *config) error {
	old := g.gen.Load()
	if g.closed {
		return errClosed // not an attempt: nothing is counted
	}
	// Shutdown cancels closing before it waits for reloadMu: a reload
	// waiting for keys must not hold it up.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(g.closing, cancel)
	defer stop()
	if err := g.checkRestartKeys(old.cfg, next); err != nil {
		return g.reloaded(err, old.cfg, nil)
	}
	log := g.loggerFor(next)
	gen, p, err := g.build(next, g.shared, log)
	if err != nil {
		return g.reloaded(err, old.cfg, nil)
	}
	// Swap only to a configuration that can decide requests (its issuers'
	// keys loaded; with DPoP required, its Redis replay store answering),
	// unless the running one cannot either: the reload may be the fix.
	waitForKeys(ctx, gen, next.StartupWait)
	if g.closing.Err() != nil {
		_ = gen.close()
		p.abandon()
		return errClosed
	}
	if err := gen.notReady(ctx); err != nil && old.ready(ctx) {
		_ = gen.close()
		p.abandon()
		return g.reloaded(fmt.Errorf("gateway: %w within startup_wait (%s); keeping the running configuration", err, startupWait(next)), old.cfg, nil)
	}
	g.install(gen, p, old)
	g.fileHash = next.hash
	return g.reloaded(nil, next, old.cfg)
}

// install makes gen current (with reloadMu held, or from New): the shared
// parts, the concurrency limit and the certificate go with it, and old,
// if any, is released. Nothing here can fail.
func (g *Gateway) install(gen *generation, p *pending, old *generation) {
	c := gen.cfg
	g.limiter.limit.Store(int64(c.MaxConcurrentRequests))
	p.commit(g.shared, gen)
	if p.certs != nil {
		g.certs.Store(p.certs)
	}
	live := []*generation{gen}
	for _, o := range g.generations {
		if !o.closed.Load() { // old among them: it is still current
			live = append(live, o)
		}
	}
	g.generations = live
	g.gen.Store(gen)
	if old != nil {
		old.release() // no longer current; closes when its last request ends
	}
	if g.started.Load() {
		g.restartWatchers(c)
	}
}

// reloaded logs and counts the outcome of a reload of next (the running
// configuration was prev when it succeeded, and is next when it failed).
func (g *Gateway) reloaded(err error, next, prev *config) error {
	log := g.gen.Load().log
	if err != nil {
		g.reloads.WithLabelValues("error").Inc()
		log.Error("configuration reload failed; keeping the running configuration", "file", next.File, "err", err)
		return err
	}
	g.reloads.WithLabelValues("success").Inc()
	log.Info("configuration reloaded", "file", next.File, "routes", len(next.Routes), "issuers", len(next.Issuers),
		"dpop", next.DPoPMode, "upstream", next.upstreamString(), "bff", next.BFF != nil)
	return nil
}

func startupWait(c *config) time.Duration {
	if c.StartupWait <= 0 {
		return defaultStartupWait
	}
	return c.StartupWait
}

// checkRestartKeys refuses what a running gateway cannot change: the
// addresses it listens on, TLS on or off, and a header limit beyond the
// listener's (fixed when it started).
func (g *Gateway) checkRestartKeys(cur, next *config) error {
	var fields []*FieldError
	refuse := func(field, key, msg string) {
		p, _ := next.keyFor(field)
		fields = append(fields, &FieldError{Line: p.Line, Key: key, Msg: msg + "; it cannot change while the gateway runs: restart to apply it"})
	}
	if next.Listen != cur.Listen && !g.ownListener { // with Options.Listener, listen is not used
		refuse("Listen", "listen", fmt.Sprintf("changed from %s to %s", cur.Listen, next.Listen))
	}
	if next.MetricsListen != cur.MetricsListen {
		refuse("MetricsListen", "metrics_listen", fmt.Sprintf("changed from %q to %q", cur.MetricsListen, next.MetricsListen))
	}
	if (next.TLS != nil) != (cur.TLS != nil) {
		what := "tls was added"
		if next.TLS == nil {
			what = "tls was removed"
		}
		refuse("TLS", "tls", what)
	}
	if g.headerLimit > 0 && maxHeaderBytes(next.MaxTokenSize) > g.headerLimit { // 0: not serving yet
		refuse("MaxTokenSize", "max_token_size", fmt.Sprintf("raised to %d, beyond what the listener's header limit (%d bytes) allows", next.MaxTokenSize, g.headerLimit))
	}
	if len(fields) == 0 {
		return nil
	}
	return &ConfigError{File: next.File, Fields: fields}
}

// restartWatchers (re)starts the pollers of the running configuration c:
// the certificate files (tls.reload_interval) and the configuration file
// (config_reload_interval). With reloadMu held.
func (g *Gateway) restartWatchers(c *config) {
	g.stopWatchers()
	ctx, cancel := context.WithCancel(context.Background())
	g.stopWatch = cancel
	if certs := g.certs.Load(); certs != nil && c.TLS != nil {
		go certs.watch(ctx, c.TLS.ReloadInterval)
	}
	if c.ConfigReloadInterval > 0 && c.fromFile {
		go g.watchConfig(ctx, c.File, c.ConfigReloadInterval)
	}
}

// stopWatchers stops the pollers; with reloadMu held.
func (g *Gateway) stopWatchers() {
	if g.stopWatch != nil {
		g.stopWatch()
		g.stopWatch = nil
	}
}

// watchConfig reads the file every interval and reloads when its bytes
// differ from those last loaded (a Kubernetes ConfigMap update swaps a
// symlink; its modification time says little). A file that cannot be
// read is skipped until it can be (an editor or a ConfigMap swap may
// remove it for a moment); one that does not load is logged and counted
// once, not every interval, until it changes again.
func (g *Gateway) watchConfig(ctx context.Context, path string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastBad [32]byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h, err := hashFile(path)
		g.reloadMu.Lock()
		changed := err == nil && h != g.fileHash && h != lastBad
		g.reloadMu.Unlock()
		if err != nil || !changed {
			continue
		}
		var ce *ConfigError
		if err := g.ReloadConfig(ctx); errors.As(err, &ce) {
			// A mistake in the file: not retried until it changes again.
			// Anything else (keys or Redis not answering in time) is
			// tried again next interval.
			lastBad = h
		}
	}
}

// hashFile is the SHA-256 of the file at path, read as loadConfig reads
// it (at most maxConfigSize+1 bytes).
func hashFile(path string) ([32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(data), nil
}

// closeGenerations closes every generation that is still open, the
// current one included, and the stores they share. For Shutdown, once the
// requests are done or cut off.
func (g *Gateway) closeGenerations() error {
	g.reloadMu.Lock()
	gens := g.generations
	g.reloadMu.Unlock()
	var errs []error
	for _, gen := range gens {
		errs = append(errs, gen.close())
	}
	return errors.Join(append(errs, g.shared.stores.closeAll())...)
}

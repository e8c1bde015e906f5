package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// maxPEMFile bounds a certificate or key file: a chain of a few
// certificates is a few KiB, and a file we read on every change must not be
// able to exhaust memory.
const maxPEMFile = 1 << 20

// loadKeyPair reads a PEM certificate chain and its private key. Errors
// name the file but never quote its contents.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := readBounded(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readBounded(keyFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", certFile, keyFile, err)
	}
	return &cert, nil // Go 1.23+ fills in cert.Leaf
}

func readBounded(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxPEMFile)
	}
	return b, nil
}

// fileStamp identifies a version of the certificate and key files by
// their contents. Modification time and size are not enough: "cp -p" or a
// coarse-mtime filesystem can replace a certificate with one of the same
// size and time. The files are small (readBounded caps them), so hashing
// them once per poll costs next to nothing.
type fileStamp struct {
	cert, key [sha256.Size]byte
}

func stampOf(certFile, keyFile string) (fileStamp, error) {
	c, err := readBounded(certFile)
	if err != nil {
		return fileStamp{}, err
	}
	k, err := readBounded(keyFile)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{sha256.Sum256(c), sha256.Sum256(k)}, nil
}

// certReloader serves the certificate in its files and swaps in a new one
// when they change (polled) or on request (SIGHUP). Handshakes only load
// an atomic pointer; a reload that fails (missing file, bad PEM, a key
// that does not match) keeps the current certificate and is logged.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	cert              atomic.Pointer[tls.Certificate]

	mu    sync.Mutex // serialises reloads; guards stamp
	stamp fileStamp  // the files' version at the last attempt, good or bad
}

// newCertReloader loads the files once; failing that is a start-up error.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	r.stamp, _ = stampOf(certFile, keyFile)
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r.cert.Store(cert)
	return r, nil
}

// getCertificate is tls.Config.GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// reload loads the files unconditionally (the SIGHUP path). On failure the
// current certificate stays.
func (r *certReloader) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stamp, _ = stampOf(r.certFile, r.keyFile)
	return r.loadLocked("reload requested")
}

// poll reloads if the files' contents changed since the
// last attempt. A failed attempt is not retried until they change again,
// so a broken file is logged once, not every interval.
func (r *certReloader) poll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := stampOf(r.certFile, r.keyFile)
	if err != nil {
		if r.stamp != (fileStamp{}) {
			r.log.Error("tls: certificate files unreadable; keeping the current certificate", "err", err)
		}
		r.stamp = fileStamp{}
		return
	}
	if st == r.stamp {
		return
	}
	r.stamp = st
	_ = r.loadLocked("files changed")
}

func (r *certReloader) loadLocked(why string) error {
	cert, err := loadKeyPair(r.certFile, r.keyFile)
	if err != nil {
		r.log.Error("tls: certificate reload failed; keeping the current certificate", "why", why, "err", err)
		return err
	}
	r.cert.Store(cert)
	attrs := []any{"why", why}
	if cert.Leaf != nil {
		attrs = append(attrs, "subject", cert.Leaf.Subject.String(), "serial", cert.Leaf.SerialNumber.String(), "not_after", cert.Leaf.NotAfter)
	}
	r.log.Info("tls: certificate loaded", attrs...)
	return nil
}

// watch polls the files every interval until ctx is done.
func (r *certReloader) watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.poll()
		}
	}
}

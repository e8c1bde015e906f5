package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/httpauth"
	"github.com/tokenguard/tokenguard/internal/keyfile"
)

// keygenAlgs are the algorithms "tokenguard keygen" makes keys for: the
// DPoP proof algorithms the guard accepts by default.
var keygenAlgs = []string{"ES256", "ES384", "EdDSA", "RS256", "PS256"}

// proofAlgs are the algorithms "tokenguard proof" signs with. A server
// accepts only those on its allow-list (by default keygenAlgs).
var proofAlgs = []string{"ES256", "ES384", "ES512", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}

// rsaKeyBits is the size of the RSA keys keygen makes.
const rsaKeyBits = 2048

// keygen implements "tokenguard keygen [-alg A] [-out FILE]".
func (c *cli) keygen(args []string) int {
	fs := flag.NewFlagSet("tokenguard keygen", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	alg := fs.String("alg", "ES256", "JWS `algorithm` the key is for: "+strings.Join(keygenAlgs, ", "))
	out := fs.String("out", "-", "`file` to write the private key to (created with mode 0600); an existing key there is kept, never overwritten; - for stdout")
	fs.Usage = func() {
		fmt.Fprint(c.stderr, "Usage: tokenguard keygen [-alg ALG] [-out FILE]\n\n"+
			"Makes a key pair for DPoP (RFC 9449) proofs. Writes the private key as PKCS#8 PEM\n"+
			"and prints the public key's RFC 7638 thumbprint (the cnf.jkt of tokens bound to it)\n"+
			"to stderr. Use the key with 'tokenguard proof -key FILE'.\n"+
			"If FILE already holds a private key, keygen keeps it and prints its thumbprint, so\n"+
			"running it twice is harmless; any other existing file is an error. Nothing is ever\n"+
			"overwritten.\n\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(c, fs, args); !ok {
		return code
	}
	if !slices.Contains(keygenAlgs, *alg) {
		fmt.Fprintf(c.stderr, "tokenguard keygen: -alg %q: want one of %s\n", *alg, strings.Join(keygenAlgs, ", "))
		return exitUsage
	}
	if *out == "" {
		fmt.Fprintln(c.stderr, "tokenguard keygen: -out: want a file name, or - for stdout")
		return exitUsage
	}
	if *out != "-" {
		algGiven := false
		fs.Visit(func(f *flag.Flag) { algGiven = algGiven || f.Name == "alg" })
		if code, done := c.keepExistingKey(*out, *alg, algGiven); done {
			return code
		}
	}

	key, err := generateKey(*alg)
	if err != nil {
		fmt.Fprintf(c.stderr, "tokenguard keygen: %v\n", err)
		return exitError
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		fmt.Fprintf(c.stderr, "tokenguard keygen: encoding the key: %v\n", err)
		return exitError
	}
	jkt, err := dpop.Thumbprint(key.Public())
	if err != nil {
		fmt.Fprintf(c.stderr, "tokenguard keygen: %v\n", err)
		return exitError
	}
	block := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})

	if *out == "-" {
		if _, err := c.stdout.Write(block); err != nil {
			fmt.Fprintf(c.stderr, "tokenguard keygen: %v\n", err)
			return exitError
		}
	} else {
		// O_EXCL: a file that appeared since keepExistingKey looked is
		// still never replaced.
		if err := writeNewFile(*out, block); err != nil {
			fmt.Fprintf(c.stderr, "tokenguard keygen: %v\n", err)
			return exitError
		}
		fmt.Fprintf(c.stderr, "wrote a new %s private key to %s\n", *alg, *out)
	}
	if *alg == "RS256" {
		fmt.Fprintln(c.stderr, "sign proofs with: tokenguard proof -alg RS256 ... (an RSA key signs PS256 by default)")
	}
	fmt.Fprintf(c.stderr, "jkt: %s\n", jkt)
	return exitOK
}

// keepExistingKey handles a keygen -out path that already exists
// (including as a symlink, which is never written through). A private
// key there is kept: its thumbprint is printed and keygen succeeds, so
// a second run is harmless, unless alg was given on the command line and
// the key cannot sign with it. Anything else there is an error. done is
// false when nothing exists at path and keygen should make a key.
func (c *cli) keepExistingKey(path, alg string, algGiven bool) (code int, done bool) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return 0, false
	} else if err != nil {
		fmt.Fprintf(c.stderr, "tokenguard keygen: %v\n", err)
		return exitError, true
	}
	key, err := keyfile.ReadPrivateKey(path)
	if err != nil {
		fmt.Fprintf(c.stderr, "tokenguard keygen: %s already exists and holds no private key keygen can keep; not overwriting it (choose another -out, or remove the file first): %v\n", path, err)
		return exitError, true
	}
	if algGiven {
		if err := keyfile.AlgFitsKey(alg, key.Public()); err != nil {
			fmt.Fprintf(c.stderr, "tokenguard keygen: %s already holds a key that cannot sign %s (%v); not overwriting it (choose another -out, or remove the file first)\n", path, alg, err)
			return exitError, true
		}
	}
	jkt, err := dpop.Thumbprint(key.Public())
	if err != nil {
		fmt.Fprintf(c.stderr, "tokenguard keygen: %s: %v\n", path, err)
		return exitError, true
	}
	fmt.Fprintf(c.stderr, "kept the existing private key in %s (keygen never overwrites a file; remove it first for a new key)\n", path)
	fmt.Fprintf(c.stderr, "jkt: %s\n", jkt)
	return exitOK, true
}

// generateKey makes a private key for alg, one of keygenAlgs.
func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "EdDSA":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case "RS256", "PS256":
		return rsa.GenerateKey(rand.Reader, rsaKeyBits)
	}
	return nil, fmt.Errorf("no key type for alg %q", alg)
}

// writeNewFile creates path with mode 0600 and writes data to it. It
// refuses to replace an existing file, and removes what it created if the
// write fails.
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; not overwriting it (choose another -out, or remove the file first)", path)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// proof implements "tokenguard proof -method M -url URL -key FILE [-token
// T] [-nonce N] [-alg A]": it prints a DPoP proof JWT and a newline, so
// that curl -H "DPoP: $(tokenguard proof ...)" works.
func (c *cli) proof(args []string) int {
	fs := flag.NewFlagSet("tokenguard proof", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	method := fs.String("method", "", "the request's HTTP `method` (htm), such as GET (required)")
	target := fs.String("url", "", "the request's absolute `URL` (htu; query and fragment are dropped) (required)")
	keyFile := fs.String("key", "", "the PKCS#8 PEM private key `file`, as written by tokenguard keygen (required)")
	token := fs.String("token", "", "the access `token` the request carries, bound to the proof by ath (omit when asking for a token)")
	nonce := fs.String("nonce", "", "the server's DPoP-Nonce `value`, when it asked for one")
	alg := fs.String("alg", "", "JWS `algorithm`; default: ES256/ES384/ES512 by curve, EdDSA, or PS256 for RSA")
	fs.Usage = func() {
		fmt.Fprint(c.stderr, "Usage: tokenguard proof -method METHOD -url URL -key FILE [-token TOKEN] [-nonce NONCE] [-alg ALG]\n\n"+
			"Prints a DPoP proof JWT (RFC 9449) for one request, signed with the key in FILE:\n\n"+
			"  curl -H \"Authorization: DPoP $TOKEN\" \\\n"+
			"       -H \"DPoP: $(tokenguard proof -method GET -url https://api.example.com/orders/ -key dpop.pem -token $TOKEN)\" \\\n"+
			"       https://api.example.com/orders/\n\n"+
			"A proof is good for one request: make a new one for every request.\n\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(c, fs, args); !ok {
		return code
	}
	usageErr := func(format string, args ...any) int {
		fmt.Fprintf(c.stderr, "tokenguard proof: "+format+"\n", args...)
		fs.Usage()
		return exitUsage
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"-method", *method}, {"-url", *target}, {"-key", *keyFile}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return usageErr("%s required", strings.Join(missing, ", "))
	}
	if !httpauth.IsToken(*method) {
		return usageErr("-method %q is not an HTTP method", *method)
	}
	if _, err := dpop.NormalizeHTU(*target); err != nil {
		return usageErr("-url %q: want an absolute http:// or https:// URL without credentials", *target)
	}
	if *token != "" && !httpauth.IsB64Token(*token) {
		// The usual mistake: "Bearer xyz" or a token with a stray newline.
		return usageErr("-token: want the access token alone (no scheme such as \"Bearer \", no spaces)")
	}
	if *nonce != "" && !isNonce(*nonce) {
		return usageErr("-nonce: want the DPoP-Nonce header's value as the server sent it")
	}
	if *alg != "" && !slices.Contains(proofAlgs, *alg) {
		return usageErr("-alg %q: want one of %s", *alg, strings.Join(proofAlgs, ", "))
	}

	key, err := keyfile.ReadPrivateKey(*keyFile)
	if err != nil {
		fmt.Fprintf(c.stderr, "tokenguard proof: %v\n", err)
		return exitError
	}
	if *alg != "" {
		if err := keyfile.AlgFitsKey(*alg, key.Public()); err != nil {
			fmt.Fprintf(c.stderr, "tokenguard proof: -alg %s: %v\n", *alg, err)
			return exitError
		}
	}
	p, err := dpop.NewProof(key, dpop.ProofParams{
		Method:      *method,
		URL:         *target,
		AccessToken: *token,
		Nonce:       *nonce,
		Alg:         *alg,
	})
	if err != nil {
		fmt.Fprintf(c.stderr, "tokenguard proof: %v\n", err)
		return exitError
	}
	if _, err := io.WriteString(c.stdout, p+"\n"); err != nil {
		fmt.Fprintf(c.stderr, "tokenguard proof: %v\n", err)
		return exitError
	}
	return exitOK
}

// parseFlags parses args into fs, refusing positional arguments. When ok
// is false the command returns code: 0 after -h, 2 for a usage error.
func parseFlags(c *cli, fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage, false
	}
	return 0, true
}

// isNonce reports whether s has the NQCHAR syntax of a DPoP-Nonce (RFC
// 9449 §8.1).
func isNonce(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}

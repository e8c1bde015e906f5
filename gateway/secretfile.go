package gateway

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxSecretFileSize bounds a *_file secret: a client secret, a session key
// or a Redis URL is short; anything larger is a wrong path.
const maxSecretFileSize = 64 << 10

// secretTwin is a secret key and its *_file twin in the decoded file.
type secretTwin struct {
	key   string // display key: "issuers[0].client_secret"
	path  []any  // for positions.at, the twin's: "issuers", 0, "client_secret_file"
	value *string
	file  *string
}

// readSecretFiles reads every secret given as a file (client_secret_file,
// session_key_file, previous_session_key_file, replay_store_file,
// session_store_file), as Kubernetes and systemd credentials mount them,
// into the value it stands for, before anything checks the values. It
// returns, by key, the path each came from. Setting both a key and its
// twin is a mistake; so is a file that cannot be read, is empty or is
// larger than 64 KiB. Only the trailing line break is dropped. No message
// ever quotes what a file holds.
func (fc *fileConfig) readSecretFiles(pos positions, bad func(keyPos, string, ...any)) map[string]string {
	var twins []secretTwin
	add := func(key string, value, file *string, path ...any) {
		twins = append(twins, secretTwin{key: key, path: path, value: value, file: file})
	}
	for i := range fc.Issuers {
		is := &fc.Issuers[i]
		add(fmt.Sprintf("issuers[%d].client_secret", i), &is.ClientSecret, &is.ClientSecretFile, "issuers", i, "client_secret_file")
	}
	add("dpop.replay_store", &fc.DPoP.ReplayStore, &fc.DPoP.ReplayStoreFile, "dpop", "replay_store_file")
	if b := fc.BFF; b != nil {
		add("bff.client_secret", &b.ClientSecret, &b.ClientSecretFile, "bff", "client_secret_file")
		add("bff.session_store", &b.SessionStore, &b.SessionStoreFile, "bff", "session_store_file")
		add("bff.session_key", &b.SessionKey, &b.SessionKeyFile, "bff", "session_key_file")
		add("bff.previous_session_key", &b.PreviousSessionKey, &b.PreviousSessionKeyFile, "bff", "previous_session_key_file")
	}
	from := map[string]string{}
	for _, t := range twins {
		if *t.file == "" {
			continue
		}
		at := pos.at(t.path...)
		name := t.key[strings.LastIndexByte(t.key, '.')+1:]
		if *t.value != "" {
			bad(at, "set %s or %s_file, not both", name, name)
			continue
		}
		v, err := readSecretFile(*t.file)
		if err != nil {
			bad(at, "%v", err)
			continue
		}
		*t.value = v
		from[t.key] = *t.file
	}
	return from
}

// readSecretFile returns the contents of the file at path without its
// trailing line break. Its errors name the path, never the contents.
func readSecretFile(path string) (string, error) {
	// A FIFO or a device would block the open or the read (and, on a
	// reload, the gateway's reload lock): only a regular file, after
	// symlinks.
	if st, err := os.Stat(path); err != nil {
		return "", err
	} else if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxSecretFileSize {
		return "", fmt.Errorf("%s is larger than %d bytes: not a secret", path, maxSecretFileSize)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if v == "" {
		return "", errors.New(path + " is empty")
	}
	return v, nil
}

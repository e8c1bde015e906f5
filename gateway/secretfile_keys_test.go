package gateway

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// fileKey is a key of the configuration file whose name ends in _file.
type fileKey struct {
	key  string        // display key: "issuers[0].client_secret_file"
	file reflect.Value // its field in a fileConfig
	twin reflect.Value // the field of the key it stands for ("client_secret"); invalid when there is none
}

// fileKeys walks v, a struct of the configuration file's schema, giving
// every list of blocks one element and every optional block a value, and
// returns each key whose name ends in _file, with its twin.
func fileKeys(t *testing.T, v reflect.Value, prefix string) []fileKey {
	t.Helper()
	fields := map[string]reflect.Value{}
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		fields[name] = v.Field(i)
	}
	var out []fileKey
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		key, fv := joinKey(prefix, name), v.Field(i)
		switch {
		case fv.Kind() == reflect.Struct:
			out = append(out, fileKeys(t, fv, key)...)
		case fv.Kind() == reflect.Pointer && fv.Type().Elem().Kind() == reflect.Struct:
			fv.Set(reflect.New(fv.Type().Elem()))
			out = append(out, fileKeys(t, fv.Elem(), key)...)
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct:
			fv.Set(reflect.MakeSlice(fv.Type(), 1, 1))
			out = append(out, fileKeys(t, fv.Index(0), key+"[0]")...)
		case strings.HasSuffix(name, "_file"):
			if fv.Kind() != reflect.String {
				t.Fatalf("%s is a %v, not a path", key, fv.Type())
			}
			out = append(out, fileKey{key: key, file: fv, twin: fields[strings.TrimSuffix(name, "_file")]})
		}
	}
	return out
}

// pathKeys are the *_file keys that name a PEM file rather than hold a
// secret's twin, each with a file in which the key points to a missing
// file, so the test shows it is read.
var pathKeys = map[string]string{
	"tls.cert_file": validYAML + "tls:\n  cert_file: $MISSING\n  key_file: $OTHER\n",
	"tls.key_file":  validYAML + "tls:\n  cert_file: $OTHER\n  key_file: $MISSING\n",
	"issuers[0].client_key_file": strings.Replace(validYAML, "    jwks_uri: http://127.0.0.1:7000/jwks\n",
		"    jwks_uri: http://127.0.0.1:7000/jwks\n    introspection_endpoint: http://127.0.0.1:7000/introspect\n    client_id: rs\n    client_auth_method: private_key_jwt\n    client_key_file: $MISSING\n", 1),
	"bff.client_key_file": validYAML + "bff:\n  issuer: https://as.example.com\n  client_id: spa\n  scopes: [openid]\n  client_auth_method: private_key_jwt\n  client_key_file: $MISSING\n",
}

// TestEveryFileKeyIsRead finds every key of the configuration file whose
// name ends in _file, by reflection on the schema, so that a key added
// later is covered without editing this test. A secret's twin (a key
// client_secret beside client_secret_file) must be read by
// readSecretFiles into the value it stands for, and refused beside it;
// any other *_file key must be in pathKeys, and read.
func TestEveryFileKeyIsRead(t *testing.T) {
	var fc fileConfig
	keys := fileKeys(t, reflect.ValueOf(&fc).Elem(), "")
	dir := t.TempDir()
	var twins []fileKey
	var paths []string
	for i, k := range keys {
		if !k.twin.IsValid() {
			paths = append(paths, k.key)
			if _, ok := pathKeys[k.key]; !ok {
				t.Errorf("%s has no twin (%s) and is not in pathKeys: a secret's *_file twin must sit beside the secret's own key and be read by readSecretFiles; a path key needs an entry in pathKeys", k.key, strings.TrimSuffix(k.key, "_file"))
			}
			continue
		}
		if k.twin.Kind() != reflect.String {
			t.Fatalf("%s stands for a %v, not a string", k.key, k.twin.Type())
		}
		p := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(p, fmt.Appendf(nil, "secret-%d\n", i), 0o600); err != nil {
			t.Fatal(err)
		}
		k.file.SetString(p)
		twins = append(twins, k)
	}
	for key := range pathKeys {
		if !slices.Contains(paths, key) {
			t.Errorf("pathKeys names %s, which is not a *_file key without a twin", key)
		}
	}
	if len(twins) < 6 {
		t.Fatalf("found %d secret twins (%v), want at least the 6 there are", len(twins), keys)
	}

	pos := positions{root: &yaml.Node{Kind: yaml.MappingNode, Line: 1}}
	var errs []string
	bad := func(p keyPos, format string, args ...any) {
		errs = append(errs, p.Key+": "+fmt.Sprintf(format, args...))
	}
	from := fc.readSecretFiles(pos, bad)
	if len(errs) > 0 {
		t.Fatalf("readSecretFiles: %v", errs)
	}
	for _, k := range twins {
		i := slices.IndexFunc(keys, func(o fileKey) bool { return o.key == k.key })
		if got, want := k.twin.String(), fmt.Sprintf("secret-%d", i); got != want {
			t.Errorf("%s: %s holds %q, want the file's %q: is it read by readSecretFiles?", k.key, strings.TrimSuffix(k.key, "_file"), got, want)
		}
		if got := from[strings.TrimSuffix(k.key, "_file")]; got != k.file.String() {
			t.Errorf("%s: reported as from file %q, want %q", k.key, got, k.file.String())
		}
	}
	if len(from) != len(twins) {
		t.Errorf("readSecretFiles read %d files, want %d: %v", len(from), len(twins), from)
	}

	// Both a secret and its twin: refused, for every one.
	errs = nil
	for _, k := range twins {
		k.twin.SetString("x")
	}
	fc.readSecretFiles(pos, bad)
	for _, k := range twins {
		name := strings.TrimSuffix(k.key[strings.LastIndexByte(k.key, '.')+1:], "_file")
		if want := fmt.Sprintf("%s: set %s or %s_file, not both", k.key, name, name); !slices.Contains(errs, want) {
			t.Errorf("no %q in %q", want, errs)
		}
	}

	// The path keys: a missing file is a mistake naming the key's file.
	other := filepath.Join(dir, "0") // exists, and is no PEM
	for key, y := range pathKeys {
		t.Run(key, func(t *testing.T) {
			missing := filepath.Join(dir, "missing.pem")
			y := strings.NewReplacer("$MISSING", missing, "$OTHER", other).Replace(y)
			_, err := ParseConfig("t.yaml", []byte(y), noEnv)
			if err == nil || !strings.Contains(err.Error(), missing) {
				t.Errorf("%s naming a missing file: %v", key, err)
			}
		})
	}
}

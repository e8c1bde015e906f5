package gateway

import (
	"bufio"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// configRef is the configuration reference, relative to this package.
const configRef = "../docs/config.md"

// TestConfigReference holds docs/config.md to the parser: every key path
// that fileConfig accepts has a row in the reference, and every row names
// a key path that fileConfig accepts.
//
// A key path is the yaml tags from the top of the file joined with ".",
// with "[]" after a list of mappings: "issuers[].jwks_uri", "tls.cert_file",
// "routes[].scopes". Fields are found with yamlFields, the table checkKeys
// refuses unknown keys with, so "accepted" means accepted by the parser.
//
// A key whose value is a mapping or a list of mappings ("tls", "dpop",
// "issuers", "routes") is a key like any other: it needs a row of its own
// (type "mapping" or "list of mappings"), and a row for it documents it.
//
// The reference's key tables are the Markdown tables whose header's first
// cell is "key"; each of their rows starts with one key path in
// backticks. Other tables and text (the environment variables) are not
// read.
func TestConfigReference(t *testing.T) {
	accepted := map[string]bool{}
	acceptedKeys(reflect.TypeFor[fileConfig](), "", accepted)

	documented := documentedKeys(t, configRef)
	if len(documented) == 0 {
		t.Fatalf("%s: no key tables found (a table whose header starts with | key |)", configRef)
	}

	for _, k := range slices.Sorted(maps.Keys(accepted)) {
		if _, ok := documented[k]; !ok {
			t.Errorf("%s: the parser accepts it but %s has no row for it", k, configRef)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(documented)) {
		if !accepted[k] {
			t.Errorf("%s:%d: %s is documented but the parser does not accept it", configRef, documented[k], k)
		}
	}
}

// acceptedKeys adds to keys the key path of every field of struct type t,
// and of the fields of the mappings below them, under prefix.
func acceptedKeys(t reflect.Type, prefix string, keys map[string]bool) {
	for name, ft := range yamlFields(t) {
		path := joinKey(prefix, name)
		keys[path] = true
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Slice {
			elem := ft.Elem()
			for elem.Kind() == reflect.Pointer {
				elem = elem.Elem()
			}
			if elem.Kind() == reflect.Struct {
				acceptedKeys(elem, path+"[]", keys)
			}
			continue
		}
		if ft.Kind() == reflect.Struct {
			acceptedKeys(ft, path, keys)
		}
	}
}

// keyCell is the first cell of a key table's row: one key path in
// backticks.
var keyCell = regexp.MustCompile("^`([a-z0-9_]+(?:\\[\\])?(?:\\.[a-z0-9_]+(?:\\[\\])?)*)`$")

// documentedKeys returns the key path of every row of the key tables in
// the Markdown file name, with its line number. A row whose first cell is
// not a key path in backticks, or a key documented twice, is an error.
func documentedKeys(t *testing.T, name string) map[string]int {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	keys := map[string]int{}
	inTable, keyTable := false, false
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(text, "|") {
			inTable, keyTable = false, false
			continue
		}
		first, _, _ := strings.Cut(text[1:], "|")
		first = strings.TrimSpace(first)
		switch {
		case !inTable: // the header row
			inTable, keyTable = true, first == "key"
		case !keyTable || strings.Trim(first, "-: ") == "": // another table, or the delimiter row
		default:
			m := keyCell.FindStringSubmatch(first)
			if m == nil {
				t.Errorf("%s:%d: first cell %q is not a key path in backticks", name, line, first)
				continue
			}
			if prev, dup := keys[m[1]]; dup {
				t.Errorf("%s:%d: %s is documented twice (first on line %d)", name, line, m[1], prev)
				continue
			}
			keys[m[1]] = line
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

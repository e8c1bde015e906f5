package gateway

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// yamlLine matches the "line N: message" form of the YAML parser's errors.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlErrors converts a YAML parser error into fieldErrors with lines.
func yamlErrors(err error) []*FieldError {
	var msgs []string
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]*FieldError, 0, len(msgs))
	for _, m := range msgs {
		fe := &FieldError{Msg: strings.TrimPrefix(m, "yaml: ")}
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			fe.Line, _ = strconv.Atoi(sm[1])
			fe.Msg = sm[2]
		}
		// Go type names mean nothing to the reader of a YAML file.
		fe.Msg = goTypeName.ReplaceAllString(fe.Msg, "")
		out = append(out, fe)
	}
	return out
}

var goTypeName = regexp.MustCompile(` (?:in|into) (?:type )?main\.\w+`)

// checkKeys reports every key of mapping n that t has no yaml field for, and
// every key given twice (and drops the second from n), recursing into known
// fields. path is n's key path.
func checkKeys(n *yaml.Node, t reflect.Type, path string) []*FieldError {
	n = resolve(n)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var errs []*FieldError
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // a merge key: its mapping is checked as if inline
				errs = append(errs, checkKeys(v, t, path)...)
				continue
			}
			key := joinKey(path, k.Value)
			if line, dup := seen[k.Value]; dup {
				errs = append(errs, &FieldError{Line: k.Line, Key: key, Msg: fmt.Sprintf("given twice (first on line %d)", line)})
				// Dropped, so that the rest of the file still decodes
				// and its other mistakes are reported in the same run.
				n.Content = append(n.Content[:i], n.Content[i+2:]...)
				i -= 2
				continue
			}
			seen[k.Value] = k.Line
			ft, ok := fields[k.Value]
			if !ok {
				msg := "unknown key"
				if s := suggest(k.Value, fields); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				errs = append(errs, &FieldError{Line: k.Line, Key: key, Msg: msg})
				continue
			}
			errs = append(errs, checkKeys(v, ft, key)...)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, e := range n.Content {
			errs = append(errs, checkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	// Kind mismatches are left to the typed decode, which names them.
	return errs
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = f.Type
		}
	}
	return m
}

// suggest returns the known key closest to k if it is a plausible typo.
func suggest(k string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for name := range fields {
		if d := editDistance(strings.ToLower(k), name); d < bestD || d == bestD && best != "" && name < best {
			best, bestD = name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// positions finds the line of a key path in the document.
type positions struct{ root *yaml.Node }

// at returns the key path's display name and line. Path elements are map
// keys (string) and sequence indexes (int). When the path does not exist,
// the line is that of the deepest node that does: for a missing required
// key, the mapping it should be in.
func (p positions) at(path ...any) keyPos {
	n := p.root
	line := n.Line
	name := ""
	found := true
	for _, el := range path {
		switch el := el.(type) {
		case string:
			name = joinKey(name, el)
		case int:
			name = fmt.Sprintf("%s[%d]", name, el)
		}
		if !found {
			continue
		}
		n = resolve(n)
		var next *yaml.Node
		switch el := el.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == el {
						line = n.Content[i].Line
						next = n.Content[i+1]
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && el < len(n.Content) {
				next = resolve(n.Content[el])
				line = next.Line
			}
		}
		if next == nil {
			found = false
			continue
		}
		n = next
	}
	return keyPos{Key: name, Line: line}
}

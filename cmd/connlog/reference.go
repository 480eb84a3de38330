package main

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
)

// The configuration reference is generated from the code: keys, types and
// environment variables from the Config structs' yaml tags (envSettings),
// defaults from defaultConfig, and meanings from the fields' doc comments,
// extracted from the source by TestConfigReference into configdoc_gen.go.
// The same test checks docs/configuration.md, so neither can drift.

// writeReference prints the configuration reference as Markdown.
func writeReference(w io.Writer) {
	cfg := defaultConfig()
	fmt.Fprint(w, `# Configuration reference

Generated from the code by `+"`connlog config reference`"+` (checked by a test, so it
cannot drift). Every key can be set in the YAML file or overridden by its
environment variable; lists are comma-separated in the environment, durations
use Go syntax (`+"`500ms`, `2s`, `5m`, `720h`"+`).

| key | type | default | environment | meaning |
|---|---|---|---|---|
`)
	for _, s := range envSettings(&cfg) {
		env := "file only"
		if s.Env != "" {
			env = "`" + s.Env + "`"
		}
		fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s |\n", s.Path, s.Type, defaultText(s.value), env, mdEscape(configDocs[s.Path]))
	}
	fmt.Fprint(w, "\nLists of objects (`api.tokens`, `retention.sites`…) are set in the file only; `[]` stands for each element.\n")
	fmt.Fprint(w, `
## Renamed and retired keys

These keys moved or were retired. The old name is still read, in the file
and as an environment variable, with a warning at start-up; `+"`connlog config check`"+`
lists what to rename or remove. Setting a renamed key under both names is an
error.

| old key | new key |
|---|---|
`)
	leaf := map[string]bool{}
	for _, s := range envSettings(&cfg) {
		leaf[s.Path] = true
	}
	for _, k := range renamedKeys {
		oldEnv, newEnv := envName(k.old), envName(k.new)
		if !leaf[k.new] { // a section: its keys and variables move with it
			k.old, k.new, oldEnv, newEnv = k.old+".*", k.new+".*", oldEnv+"_*", newEnv+"_*"
		}
		fmt.Fprintf(w, "| `%s` (`%s`) | `%s` (`%s`) |\n", k.old, oldEnv, k.new, newEnv)
	}
	for _, k := range retiredKeys {
		fmt.Fprintf(w, "| `%s` (`%s`) | none: a share of `shutdown_timeout`; the old key still sets it |\n", k.old, envName(k.old))
	}
}

func defaultText(v reflect.Value) string {
	if v.Type() == reflect.TypeOf(time.Duration(0)) {
		if d := time.Duration(v.Int()); d != 0 {
			return "`" + d.String() + "`"
		}
		return "—"
	}
	if v.IsZero() {
		return "—"
	}
	switch v.Kind() {
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return "`" + strings.Join(parts, ",") + "`"
	case reflect.Map:
		return "(see meaning)"
	}
	if s, ok := v.Interface().(fmt.Stringer); ok && v.Kind() == reflect.String {
		return "`" + s.String() + "`"
	}
	return "`" + fmt.Sprint(v.Interface()) + "`"
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

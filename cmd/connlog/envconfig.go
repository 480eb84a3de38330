package main

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/connlog/connlog/store/retention"
)

// Every configuration value can be overridden by an environment variable
// named after its YAML path: kafka.brokers → CONNLOG_KAFKA_BROKERS. Lists
// are comma-separated; durations use Go syntax (1s, 5m).

// envSetting is one configuration key.
type envSetting struct {
	Path  string // YAML path, e.g. "kafka.brokers"; "api.tokens[].name" in a list of objects
	Env   string // CONNLOG_KAFKA_BROKERS; "" for a key set in the file only
	Type  string
	value reflect.Value
}

// envSettings lists every setting reachable from cfg (a pointer to a
// struct), following yaml tags: each scalar or list with its environment
// variable, and each list of objects (api.tokens, retention.sites)
// with the keys of its elements, which are set in the file only (Env "").
func envSettings(cfg any) []envSetting {
	var out []envSetting
	var walk func(v reflect.Value, path []string, fileOnly bool)
	walk = func(v reflect.Value, path []string, fileOnly bool) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, ok := yamlKey(f)
			if !ok {
				continue
			}
			fv := v.Field(i)
			p := append(append([]string(nil), path...), name)
			if fv.Kind() == reflect.Struct && !isLeaf(fv) {
				walk(fv, p, fileOnly)
				continue
			}
			s := envSetting{Path: strings.Join(p, "."), Type: typeName(fv), value: fv}
			if !fileOnly {
				s.Env = "CONNLOG_" + strings.ToUpper(strings.Join(p, "_"))
			}
			if fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct {
				// Lists of objects are set in the file only; their
				// elements' keys are listed after them.
				s.Env, s.Type = "", "list of objects"
				out = append(out, s)
				p[len(p)-1] += "[]"
				walk(reflect.New(fv.Type().Elem()).Elem(), p, true)
				continue
			}
			out = append(out, s)
		}
	}
	walk(reflect.ValueOf(cfg).Elem(), nil, false)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// yamlKey returns the configuration key of a struct field as the YAML
// decoder sees it: the yaml tag's name, else the lower-cased field name;
// false for unexported or `yaml:"-"` fields.
func yamlKey(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	name := strings.Split(f.Tag.Get("yaml"), ",")[0]
	if name == "-" {
		return "", false
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name, true
}

func isLeaf(v reflect.Value) bool {
	if v.Type() == reflect.TypeOf(time.Time{}) {
		return true
	}
	_, ok := v.Addr().Interface().(encoding.TextUnmarshaler)
	return ok
}

func typeName(v reflect.Value) string {
	switch v.Type() {
	case reflect.TypeOf(time.Duration(0)):
		return "duration"
	case reflect.TypeOf(retention.Period{}):
		return "period (12mo, 30d)"
	}
	switch v.Kind() {
	case reflect.Slice:
		return "list of " + v.Type().Elem().Kind().String()
	case reflect.String:
		return "string"
	}
	return v.Kind().String()
}

// applyEnv sets every configuration value whose variable is present in
// env (as from os.Environ) and returns one error per bad value.
func applyEnv(cfg any, env []string) []error {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "CONNLOG_") {
			vars[k] = v
		}
	}
	var errs []error
	known := map[string]bool{}
	for _, s := range envSettings(cfg) {
		if s.Env == "" {
			continue
		}
		known[s.Env] = true
		raw, ok := vars[s.Env]
		if !ok {
			continue
		}
		if err := setValue(s.value, raw); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Env, err))
		}
	}
	for k := range vars {
		if !known[k] && !ignoredEnv[k] {
			errs = append(errs, fmt.Errorf("%s: no such setting (see connlog config reference)", k))
		}
	}
	return errs
}

// ignoredEnv are CONNLOG_ variables that are not configuration keys: the
// configuration file's path, the embedded engine's library, the client
// settings of `connlog search`, and the switches of the test suite.
var ignoredEnv = map[string]bool{
	"CONNLOG_CONFIG":         true,
	"CONNLOG_CHDB_LIBRARY":   true,
	"CONNLOG_CACHE_DIR":      true,
	"CONNLOG_API":            true,
	"CONNLOG_TOKEN":          true,
	"CONNLOG_REQUIRE_ENGINE": true,
	"CONNLOG_REQUIRE_TOOLS":  true,
	// The crash test's documented overrides (cmd/connlog/crash_test.go):
	// the serve processes it starts inherit its environment.
	"CONNLOG_CRASH_LINES":    true,
	"CONNLOG_CRASH_KILLS":    true,
	"CONNLOG_SYSLOG_NG_ROOT": true,
}

func setValue(v reflect.Value, raw string) error {
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(raw))
	}
	if v.Type() == reflect.TypeOf(time.Duration(0)) {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(raw, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return err
		}
		v.SetFloat(f)
	case reflect.Slice:
		var parts []string
		for _, p := range strings.Split(raw, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		s := reflect.MakeSlice(v.Type(), len(parts), len(parts))
		for i, p := range parts {
			if err := setValue(s.Index(i), p); err != nil {
				return err
			}
		}
		v.Set(s)
	default:
		return fmt.Errorf("cannot set a %s from the environment", v.Type())
	}
	return nil
}

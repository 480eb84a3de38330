package main

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Configuration keys that moved keep working: the old key is still read,
// in the file and as an environment variable, and each use of it is a
// deprecation, logged at start-up (serve) and listed by `connlog config
// check` with what to rename. Setting a key under both its old and its new
// name is an error, since one of them would be silently ignored.

// renamedKeys are the keys that moved, old YAML path → new one. A key
// names its whole subtree: clickhouse.retention.sites moved with
// clickhouse.retention.
var renamedKeys = []struct{ old, new string }{
	// Retention, the ClickHouse role users and the signing key are not
	// about the connection to ClickHouse: they sit at the top level.
	{"clickhouse.retention", "retention"},
	{"clickhouse.role_users", "role_users"},
	{"clickhouse.key_path", "signing_key_file"},
}

// retiredKeys are the former shutdown budgets of the pipeline and the API:
// shutdown_timeout is now the only one, and their shares are derived from
// it (shutdownShares). A retired key still sets its share, with a warning
// to remove it.
var retiredKeys = []struct {
	old   string
	field func(*Config) *time.Duration
}{
	{"kafka.shutdown_timeout", func(c *Config) *time.Duration { return &c.Kafka.ShutdownTimeout }},
	{"api.shutdown_timeout", func(c *Config) *time.Duration { return &c.API.ShutdownTimeout }},
}

// retiredNote says what replaces a retired key.
const retiredNote = "shutdown_timeout (remove it: a share of shutdown_timeout is derived; until then its value still applies)"

// deprecation is one use of an old key.
type deprecation struct {
	old, new string // YAML paths or environment variables
	// path is the YAML path of old.
	path string
}

// usedOld reports whether the configuration set the old key path, in the
// file or the environment.
func (c *Config) usedOld(path string) bool {
	for _, d := range c.deprecated {
		if d.path == path {
			return true
		}
	}
	return false
}

// envName is the environment variable of a YAML path.
func envName(path string) string {
	return "CONNLOG_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// upgradeFile moves the old keys of a configuration file's document to
// their new names, in place, before the file is decoded. It returns the
// deprecations found and an error per key set under both names.
func upgradeFile(doc *yaml.Node, cfg *Config) ([]deprecation, []error) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil // empty, or not a mapping: the decoder says what is wrong
	}
	root := doc.Content[0]
	var deps []deprecation
	var errs []error
	for _, k := range renamedKeys {
		key, val := takeKey(root, strings.Split(k.old, "."))
		if val == nil {
			continue
		}
		if _, dup := findKey(root, strings.Split(k.new, ".")); dup != nil {
			errs = append(errs, fmt.Errorf("%s and %s are both set: keep %s only (%s is its old name)", k.old, k.new, k.new, k.old))
			continue
		}
		putKey(root, strings.Split(k.new, "."), key, val)
		deps = append(deps, deprecation{old: k.old, new: k.new, path: k.old})
	}
	for _, k := range retiredKeys {
		if _, val := takeKey(root, strings.Split(k.old, ".")); val != nil {
			if err := val.Decode(k.field(cfg)); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k.old, err))
			}
			deps = append(deps, deprecation{old: k.old, new: retiredNote, path: k.old})
		}
	}
	return deps, errs
}

// findKey returns the key and value nodes at path under the mapping m, or
// nils.
func findKey(m *yaml.Node, path []string) (key, val *yaml.Node) {
	if len(path) == 0 {
		return nil, nil
	}
	name, rest := path[0], path[1:]
	for i := 0; m != nil && m.Kind == yaml.MappingNode && i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != name {
			continue
		}
		if len(rest) == 0 {
			return m.Content[i], m.Content[i+1]
		}
		return findKey(m.Content[i+1], rest)
	}
	return nil, nil
}

// takeKey removes the entry at path from the mapping m and returns its key
// and value nodes, or nils if there is none.
func takeKey(m *yaml.Node, path []string) (key, val *yaml.Node) {
	parent := m
	if len(path) > 1 {
		_, parent = findKey(m, path[:len(path)-1])
	}
	if parent == nil || parent.Kind != yaml.MappingNode {
		return nil, nil
	}
	name := path[len(path)-1]
	for i := 0; i+1 < len(parent.Content); i += 2 {
		if parent.Content[i].Value == name {
			key, val = parent.Content[i], parent.Content[i+1]
			parent.Content = append(parent.Content[:i], parent.Content[i+2:]...)
			return key, val
		}
	}
	return nil, nil
}

// putKey adds the entry key: val at path under the mapping m, creating the
// mappings on the way; the key node is renamed to the path's last element.
func putKey(m *yaml.Node, path []string, key, val *yaml.Node) {
	for _, name := range path[:len(path)-1] {
		_, next := findKey(m, []string{name})
		if next == nil {
			next = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, next)
		}
		m = next
	}
	key.Value = path[len(path)-1]
	m.Content = append(m.Content, key, val)
}

// upgradeEnv renames the old keys' environment variables in env (as from
// os.Environ) to the new ones: CONNLOG_CLICKHOUSE_RETENTION_ACCESS becomes
// CONNLOG_RETENTION_ACCESS; a retired key's variable sets its field of cfg
// and is removed. It returns the new environment, the deprecations found
// and an error per variable set under both names or not a duration.
func upgradeEnv(env []string, cfg *Config) ([]string, []deprecation, []error) {
	set := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	out := make([]string, 0, len(env))
	var deps []deprecation
	var errs []error
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		for _, r := range retiredKeys {
			if k == envName(r.old) {
				d, err := time.ParseDuration(v)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", k, err))
				}
				*r.field(cfg) = d
				deps = append(deps, deprecation{old: k, new: retiredNote, path: r.old})
				k = ""
			}
		}
		for _, r := range renamedKeys {
			if k == "" {
				break
			}
			old, rest := envName(r.old), ""
			if k != old {
				var ok bool
				if rest, ok = strings.CutPrefix(k, old+"_"); !ok {
					continue
				}
				rest = "_" + rest
			}
			nk := envName(r.new) + rest
			if set[nk] {
				errs = append(errs, fmt.Errorf("%s and %s are both set: keep %s only (%s is its old name)", k, nk, nk, k))
				k = ""
				break
			}
			deps = append(deps, deprecation{old: k, new: nk, path: r.old})
			k = nk
			break
		}
		if k != "" {
			out = append(out, k+"="+v)
		}
	}
	return out, deps, errs
}

// warnDeprecated logs each old key the configuration used.
func warnDeprecated(cfg *Config, logger *slog.Logger) {
	for _, d := range cfg.deprecated {
		logger.Warn("deprecated configuration key", "key", d.old, "use", d.new)
	}
}

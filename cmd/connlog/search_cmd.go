package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"
)

// searchUsage is the help of `connlog search`.
const searchUsage = `usage: connlog search -ip ADDR|CIDR -purpose REF [-since 24h | -from T -to T] [filters] [-connections] [-json|-csv]

Searches the access log (role analyst) or, with -connections, the connection
records (role officer) through the query API, and prints a table, or the
whole result as NDJSON (-json) or CSV (-csv).

The API address and the token come from, by priority: the flags -api and
-token-file; the environment, CONNLOG_API and CONNLOG_TOKEN; the file given
by -config (default ~/.config/connlog/search.yaml) with the keys api and
token_file. The default address is http://127.0.0.1:8080.
`

// searchDefaultAPI is the API address when none is configured.
const searchDefaultAPI = "http://127.0.0.1:8080"

// searchFileConfig is the client configuration file of `connlog search`.
type searchFileConfig struct {
	API       string `yaml:"api"`
	TokenFile string `yaml:"token_file"`
}

// cmdSearch runs `connlog search`.
func cmdSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("search", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, searchUsage, "\nflags:\n"); fs.PrintDefaults() }
	var (
		ip          = fs.String("ip", "", "client address or CIDR network (required)")
		purpose     = fs.String("purpose", "", "purpose of the search, e.g. an incident reference (required)")
		since       = fs.Duration("since", 24*time.Hour, "search the last DURATION (ignored with -from and -to)")
		from        = fs.String("from", "", "start of the window, RFC 3339")
		to          = fs.String("to", "", "end of the window, RFC 3339 (default now)")
		site        = fs.String("site", "", "exact site (virtual host)")
		port        = fs.Int("port", 0, "client source port")
		pathPrefix  = fs.String("path-prefix", "", "keep requests whose path starts with this")
		method      = fs.String("method", "", "HTTP method (access log only)")
		status      = fs.String("status", "", "HTTP status (404) or class (4xx)")
		userAgent   = fs.String("user-agent", "", "user-agent substring (access log only)")
		user        = fs.String("user", "", "authenticated user or author")
		operation   = fs.String("operation", "", "read, create, modify or delete (connection records only)")
		connections = fs.Bool("connections", false, "search the connection records (role officer) instead of the access log")
		asJSON      = fs.Bool("json", false, "print the whole result as NDJSON, one object per line")
		asCSV       = fs.Bool("csv", false, "print the whole result as CSV")
		limit       = fs.Int("limit", 1000, "rows of the table (with -json or -csv: 0 means the whole result)")
		apiAddr     = fs.String("api", "", "API address (default $CONNLOG_API, the config file, or "+searchDefaultAPI+")")
		tokenFile   = fs.String("token-file", "", "file holding the bearer token (default $CONNLOG_TOKEN, or the config file's token_file)")
		configFile  = fs.String("config", "", "client configuration file (default ~/.config/connlog/search.yaml if it exists)")
		timeout     = fs.Duration("timeout", 10*time.Minute, "give up after this long")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see connlog search -h", fs.Arg(0))
	}
	if *ip == "" || strings.TrimSpace(*purpose) == "" {
		return errors.New("-ip and -purpose are required; see connlog search -h")
	}
	if *asJSON && *asCSV {
		return errors.New("-json and -csv exclude each other")
	}
	base, token, err := searchClientSettings(*apiAddr, *tokenFile, *configFile)
	if err != nil {
		return err
	}

	q := url.Values{"ip": {*ip}}
	if *from != "" || *to != "" {
		end := time.Now().UTC().Format(time.RFC3339)
		if *to != "" {
			end = *to
		}
		if *from == "" {
			return errors.New("-to needs -from")
		}
		q.Set("from", *from)
		q.Set("to", end)
	} else {
		now := time.Now().UTC()
		q.Set("from", now.Add(-*since).Format(time.RFC3339))
		q.Set("to", now.Add(time.Second).Format(time.RFC3339))
	}
	for k, v := range map[string]string{"site": *site, "path_prefix": *pathPrefix, "status": *status, "user": *user} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *port != 0 {
		q.Set("port", strconv.Itoa(*port))
	}
	endpoint := "/v1/access"
	if *connections {
		endpoint = "/v1/connections"
		if *method != "" || *userAgent != "" {
			return errors.New("connection records keep neither method nor user agent; use -operation")
		}
		if *operation != "" {
			q.Set("operation", *operation)
		}
	} else {
		if *operation != "" {
			return errors.New("-operation is for -connections")
		}
		if *method != "" {
			q.Set("method", *method)
		}
		if *userAgent != "" {
			q.Set("user_agent", *userAgent)
		}
	}
	if *limit < 0 {
		return errors.New("-limit must not be negative")
	}
	if *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+endpoint+"?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("build request to %s: %w", base, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Purpose", strings.TrimSpace(*purpose))
	// The table is rendered from the NDJSON export too: one code path,
	// and rows are printed as they come.
	req.Header.Set("Accept", "application/x-ndjson")
	if *asCSV {
		req.Header.Set("Accept", "text/csv")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ask %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return apiFailure(resp)
	}
	var rows int
	switch {
	case *asJSON || *asCSV:
		if _, err := io.Copy(stdout, resp.Body); err != nil {
			return fmt.Errorf("read the answer (it is incomplete): %w", err)
		}
		rows, _ = strconv.Atoi(resp.Trailer.Get("X-Connlog-Rows"))
	default:
		if rows, err = printTable(stdout, resp.Body, *connections); err != nil {
			return err
		}
	}
	if resp.Trailer.Get("X-Connlog-Rows") == "" {
		return errors.New("the answer ended without its trailers: it may be incomplete")
	}
	note := ""
	if resp.Trailer.Get("X-Connlog-Truncated") == "true" {
		note = " (stopped at the server's export bound: narrow the search)"
	} else if *limit > 0 && rows == *limit {
		note = " (the -limit; there may be more)"
	}
	fmt.Fprintf(stderr, "%d rows%s, sha256 %s\n", rows, note, resp.Trailer.Get("X-Connlog-Sha256"))
	return nil
}

// searchClientSettings finds the API address and the token.
func searchClientSettings(apiFlag, tokenFileFlag, configFlag string) (base, token string, err error) {
	var fc searchFileConfig
	path := configFlag
	if path == "" {
		if home, err := os.UserHomeDir(); err == nil {
			if p := filepath.Join(home, ".config", "connlog", "search.yaml"); fileExists(p) {
				path = p
			}
		}
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", "", fmt.Errorf("read client configuration: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
			return "", "", fmt.Errorf("client configuration %s: %w", path, err)
		}
	}
	base = firstNonEmpty(apiFlag, os.Getenv("CONNLOG_API"), fc.API, searchDefaultAPI)
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", fmt.Errorf("API address %q: want http(s)://host:port", base)
	}
	switch {
	case tokenFileFlag != "":
		token, err = readTokenFile(tokenFileFlag)
	case os.Getenv("CONNLOG_TOKEN") != "":
		token = strings.TrimSpace(os.Getenv("CONNLOG_TOKEN"))
	case fc.TokenFile != "":
		token, err = readTokenFile(fc.TokenFile)
	default:
		err = errors.New("no token: set CONNLOG_TOKEN, pass -token-file, or set token_file in the client configuration")
	}
	return base, token, err
}

func readTokenFile(path string) (string, error) {
	if strings.HasPrefix(path, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, path[2:])
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return tok, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// apiFailure turns an API error answer into an error a person reads.
func apiFailure(resp *http.Response) error {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
		return fmt.Errorf("the API answered %s", resp.Status)
	}
	msg := fmt.Sprintf("%s (%s, HTTP %d)", e.Error.Message, e.Error.Code, resp.StatusCode)
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		msg += "; retry in " + ra + "s"
	}
	return errors.New(msg)
}

// printTable renders NDJSON rows as an aligned table and returns how many.
func printTable(w io.Writer, body io.Reader, connections bool) (int, error) {
	cols := []string{"time", "client_ip", "client_port", "site", "method", "status", "path", "user_agent"}
	if connections {
		cols = []string{"time", "client_ip", "client_port", "site", "operation", "status", "path", "user"}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(cols, "\t")))
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	n := 0
	for sc.Scan() {
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return n, fmt.Errorf("read row %d: %w", n+1, err)
		}
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = cell(row[c])
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
		n++
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("read the answer (it is incomplete): %w", err)
	}
	return n, tw.Flush()
}

// cell prints a JSON value in a table cell: one line, at most 60 characters.
func cell(v any) string {
	var s string
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		s = v
	case float64:
		s = strconv.FormatFloat(v, 'f', -1, 64)
	default:
		s = fmt.Sprint(v)
	}
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > 60 {
		s = string(r[:59]) + "…"
	}
	if s == "" {
		return "-"
	}
	return s
}

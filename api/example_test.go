package api

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connlog/connlog/store"
)

// An analyst's token is made once with NewToken: the token goes to the
// analyst, the hash into the configuration.
func ExampleNewToken() {
	token, hash, err := NewToken()
	if err != nil {
		panic(err)
	}
	cfg := Config{Tokens: []Token{{Name: "alice", Role: RoleAnalyst, SHA256: hash}}}
	fmt.Println(len(token) > 0, cfg.Validate())
	// Output: true <nil>
}

// A search states who asks (the bearer token) and why (X-Purpose); it is
// audited before it is answered. Here the store is a fake; main passes a
// *store.Store.
func ExampleServer_Handler() {
	token, hash, _ := NewToken()
	st := &fakeStore{hits: []store.Hit{{
		EventTime: time.Date(2026, 3, 3, 14, 3, 27, 0, time.UTC),
		ClientIP:  netip.MustParseAddr("203.0.113.7"), ClientPort: 51234,
		Method: "GET", Path: "/", Status: 200, BytesSent: 1024,
		Source: store.Source{Topic: "nginx", Offset: 42},
	}}}
	srv, err := New(Config{Tokens: []Token{{Name: "alice", Role: RoleAnalyst, SHA256: hash}}},
		st, prometheus.NewRegistry(), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/v1/access?ip=203.0.113.7&from=2026-03-03T14:00:00Z&to=2026-03-03T15:00:00Z", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Purpose", "INC-2026-042")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Body)
	fmt.Print(rec.Code, " ", string(body))
	a := st.auditRows()[0]
	fmt.Println(a.Actor, a.Purpose, a.Outcome, a.Rows)
	// Output:
	// 200 {"rows":[{"time":"2026-03-03T14:03:27.000Z","client_ip":"203.0.113.7","client_port":51234,"method":"GET","path":"/","status":200,"bytes":1024,"request_time_ms":0,"topic":"nginx","partition":0,"offset":42}],"count":1,"truncated":false}
	// alice INC-2026-042 ok 1
}

package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRequisitionDueDate checks date_due on create (given or not), its
// validation, and the overdue flag the register computes with the server's
// clock: late only while unanswered and after the due day.
func TestRequisitionDueDate(t *testing.T) {
	e := newReqEnv(t)
	day := e.base.Truncate(24 * time.Hour)
	dueDay := day.Add(3 * 24 * time.Hour)

	type view struct {
		ID      string     `json:"id"`
		Due     *time.Time `json:"date_due"`
		Overdue *bool      `json:"overdue"`
	}
	decode := func(tb testing.TB, body []byte) view {
		tb.Helper()
		var v view
		if err := json.Unmarshal(body, &v); err != nil {
			tb.Fatal(err)
		}
		if v.Overdue == nil {
			tb.Fatalf("no overdue field in %s", body)
		}
		return v
	}
	create := func(due string) (int, []byte) {
		b := e.requisitionBody(e.suspectPort)
		if due != "" {
			b["date_due"] = due
		}
		status, _, body := e.do(t, http.MethodPost, "/v1/requisitions", e.officer, b)
		return status, body
	}

	// Without a due date: none, never overdue.
	status, body := create("")
	if status != http.StatusOK {
		t.Fatalf("create without date_due: %d %s", status, body)
	}
	if v := decode(t, body); v.Due != nil || *v.Overdue || strings.Contains(string(body), `"date_due"`) {
		t.Errorf("created without date_due: %s", body)
	}
	plain := decode(t, body).ID

	// With one: kept as the day, not overdue on the day itself.
	e.srv.now = func() time.Time { return dueDay.Add(23 * time.Hour) }
	status, body = create(dueDay.Format(time.DateOnly))
	if status != http.StatusOK {
		t.Fatalf("create with date_due: %d %s", status, body)
	}
	v := decode(t, body)
	if v.Due == nil || !v.Due.Equal(dueDay) || *v.Overdue {
		t.Fatalf("created with date_due %s: %s", dueDay.Format(time.DateOnly), body)
	}
	dated := v.ID

	// Same day as date_received is allowed; before it, or not a date, is not.
	if status, body := create(day.Format(time.DateOnly)); status != http.StatusOK {
		t.Errorf("date_due on the day received: %d %s", status, body)
	}
	for _, bad := range []struct{ due, want string }{
		{day.Add(-24 * time.Hour).Format(time.DateOnly), "date_due (" + day.Add(-24*time.Hour).Format(time.DateOnly) + ") is before date_received"},
		{"next week", "date_due must be a date, as YYYY-MM-DD"},
		{dueDay.Format(time.RFC3339), "date_due must be a date, as YYYY-MM-DD"},
	} {
		status, body := create(bad.due)
		var ae struct {
			Error struct {
				Code    Code   `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(body, &ae); err != nil || status != http.StatusBadRequest || ae.Error.Code != CodeBadRequest || !strings.Contains(ae.Error.Message, bad.want) {
			t.Errorf("date_due %q: %d %s, want 400 saying %q", bad.due, status, body, bad.want)
		}
	}

	// The day after the due date it is overdue, in the list and the entry.
	e.srv.now = func() time.Time { return dueDay.Add(24*time.Hour + time.Minute) }
	status, _, body = e.do(t, http.MethodGet, "/v1/requisitions/"+dated, e.officer, nil)
	if v := decode(t, body); status != http.StatusOK || !*v.Overdue {
		t.Errorf("entry the day after its due date: %d %s", status, body)
	}
	status, _, body = e.do(t, http.MethodGet, "/v1/requisitions", e.officer, nil)
	var list struct {
		Requisitions []json.RawMessage `json:"requisitions"`
	}
	if err := json.Unmarshal(body, &list); status != http.StatusOK || err != nil {
		t.Fatalf("list: %d %s", status, body)
	}
	seen := map[string]bool{}
	for _, raw := range list.Requisitions {
		v := decode(t, raw)
		seen[v.ID] = *v.Overdue
	}
	if !seen[dated] || seen[plain] {
		t.Errorf("overdue in the list: dated %v, without due date %v", seen[dated], seen[plain])
	}

	// Answered, it is no longer overdue.
	e.srv.now = time.Now
	if status, _, body := e.do(t, http.MethodPost, "/v1/requisitions/"+dated+"/run", e.officer, nil); status != http.StatusOK {
		t.Fatalf("run: %d %s", status, body)
	}
	sent := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	if status, _, body := e.do(t, http.MethodPost, "/v1/requisitions/"+dated+"/answered", e.officer,
		map[string]string{"sent_at": sent.Format(time.RFC3339), "how": "PNIJ platform"}); status != http.StatusOK {
		t.Fatalf("answered: %d %s", status, body)
	}
	e.srv.now = func() time.Time { return dueDay.Add(10 * 24 * time.Hour) }
	status, _, body = e.do(t, http.MethodGet, "/v1/requisitions/"+dated, e.officer, nil)
	if v := decode(t, body); status != http.StatusOK || *v.Overdue {
		t.Errorf("answered entry after its due date: %d %s", status, body)
	}
}

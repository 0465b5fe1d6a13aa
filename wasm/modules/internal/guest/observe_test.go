package guest

import (
	"testing"
	"time"
)

func TestRFC3339Ms(t *testing.T) {
	for _, v := range []string{"2027-01-15T08:00:01Z", "1970-01-01T00:00:00Z", "2024-02-29T23:59:59.5+02:00",
		"2100-03-01T00:00:00.123456789-07:30", "2026-12-31T12:00:00z"} {
		want, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			want, _ = time.Parse(time.RFC3339Nano, v[:len(v)-1]+"Z")
		}
		if got := RFC3339Ms(v); got != want.UnixMilli() {
			t.Errorf("RFC3339Ms(%q) = %d, want %d", v, got, want.UnixMilli())
		}
	}
	for _, v := range []string{"", "2027-01-15", "2027-13-15T08:00:01Z", "2027-01-15T08:00:01", "2027-01-15T08:00:01+0200", "abcd-01-15T08:00:01Z"} {
		if got := RFC3339Ms(v); got != -1 {
			t.Errorf("RFC3339Ms(%q) = %d, want -1", v, got)
		}
	}
}

func TestAfterMs(t *testing.T) {
	const now = 1_000_000
	for _, v := range []string{"6ms", "1s", "6m0s", "1h2m3.5s", "7.66s", "0s", "1500us"} {
		d, _ := time.ParseDuration(v)
		if got := AfterMs(v, now); got != now+d.Milliseconds() {
			t.Errorf("AfterMs(%q) = %d, want %d", v, got, now+d.Milliseconds())
		}
	}
	for _, v := range []string{"", "s", "5", "5x", "-1s", "1..2s"} {
		if got := AfterMs(v, now); got != -1 {
			t.Errorf("AfterMs(%q) = %d, want -1", v, got)
		}
	}
}

func TestHandleObserve(t *testing.T) {
	Register(&Provider{Name: "x", Version: "1", Observe: func(r Request) Observation {
		w := NewWindow("requests")
		w.Remaining, w.Utilization = Count(r.Headers["x-left"]), 0.25
		return Observation{Status: "allowed", Windows: []Window{w, NewWindow("b")}}
	}, ObserveHeaders: []string{"x-"}})
	defer Register(nil)
	compareWithStdlib(t, Handle([]byte(`{"v":1,"op":"info"}`)))
	out := Handle([]byte(`{"v":1,"op":"observe","status":200,"headers":{"X-Left":"7"},"now":5}`))
	compareWithStdlib(t, out)
	want := `{"ok":true,"status":"allowed","resetAt":null,"windows":[{"name":"requests","limit":null,"remaining":7,"resetAt":null,"utilization":0.25},{"name":"b","limit":null,"remaining":null,"resetAt":null,"utilization":null}]}`
	if string(out) != want {
		t.Errorf("observe answer\n got %s\nwant %s", out, want)
	}
}

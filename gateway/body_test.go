package gateway

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestBodyMeta(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body   string
		model  string
		stream bool
	}{
		{`{"model":"claude-sonnet-5","stream":true}`, "claude-sonnet-5", true},
		{` { "stream" : false , "model" : "gpt-5" } `, "gpt-5", false},
		{`{"messages":[{"role":"user","content":"say \"model\": \"x\", {[}"}],"model":"m","stream":true}`, "m", true},
		{`{"metadata":{"model":"inner","stream":true},"model":"outer"}`, "outer", false},
		{`{"model":"a\u00e9b"}`, "aéb", false},
		{`{"model":1,"stream":"true"}`, "", false},
		{`{"model":"x"`, "", false},
		{`[{"model":"x"}]`, "", false},
		{``, "", false},
		{`{}`, "", false},
		{`{"model":"x","model":"y"}`, "y", false},
	}
	for _, tc := range cases {
		m, s := bodyMeta([]byte(tc.body))
		if m != tc.model || s != tc.stream {
			t.Errorf("bodyMeta(%s) = %q %v, want %q %v", tc.body, m, s, tc.model, tc.stream)
		}
	}
}

// TestPlainJSONStringAsEncodingJSON: where the fast path answers, it is
// encoding/json's answer; escapes, control characters, non-ASCII and
// anything not one string are left to encoding/json.
func TestPlainJSONStringAsEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		val   string
		plain bool
	}{
		{`"claude-sonnet-5"`, true}, {`"gpt-5.1 (preview)/x:y"`, true}, {`""`, true},
		{`"a\"b"`, false}, {`"a\u00e9"`, false}, {`"é"`, false}, {"\"a\x01b\"", false}, {"\"a\xffb\"", false},
		{"\"a\x7fb\"", false}, {`"a"b"`, false}, {`"a`, false}, {`a"`, false}, {`"`, false}, {`1`, false}, {`null`, false},
	} {
		got, ok := plainJSONString([]byte(tc.val))
		if ok != tc.plain {
			t.Errorf("plainJSONString(%q) ok = %v, want %v", tc.val, ok, tc.plain)
			continue
		}
		var want string
		if ok && (json.Unmarshal([]byte(tc.val), &want) != nil || got != want) {
			t.Errorf("plainJSONString(%q) = %q, encoding/json says %q", tc.val, got, want)
		}
		var m string
		json.Unmarshal([]byte(tc.val), &m)
		if bm, _ := bodyMeta([]byte(`{"model":` + tc.val + `}`)); bm != m && json.Valid([]byte(tc.val)) {
			t.Errorf("bodyMeta with model %s = %q, encoding/json says %q", tc.val, bm, m)
		}
	}
}

// FuzzBodyMeta checks the scanner against encoding/json on valid objects.
func FuzzBodyMeta(f *testing.F) {
	for _, s := range []string{`{"model":"m","stream":true}`, `{"a":[1,{"b":"}"}],"model":"x"}`, `{"model":"\"q\""}`, `{"stream":true,"n":-1.5e3,"z":null}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		m, s := bodyMeta([]byte(body)) // must never panic
		var ref map[string]json.RawMessage
		if strings.Contains(body, `\`) || json.Unmarshal([]byte(body), &ref) != nil {
			return
		}
		var want string
		if raw, ok := ref["model"]; ok {
			json.Unmarshal(raw, &want)
		}
		wantStream := bytes.Equal(ref["stream"], []byte("true"))
		if m != want || s != wantStream {
			t.Errorf("bodyMeta(%q) = %q %v, encoding/json says %q %v", body, m, s, want, wantStream)
		}
	})
}

func BenchmarkBodyMeta(b *testing.B) {
	body := []byte(`{"model":"claude-sonnet-5","max_tokens":1024,"messages":[` + strings.Repeat(`{"role":"user","content":"`+strings.Repeat("lorem ipsum dolor sit amet ", 40)+`"},`, 100) + `{"role":"user","content":"hi"}],"stream":true}`)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if m, s := bodyMeta(body); m == "" || !s {
			b.Fatal("missed")
		}
	}
}

func BenchmarkBodyMetaUnmarshal(b *testing.B) {
	body := []byte(`{"model":"claude-sonnet-5","max_tokens":1024,"messages":[` + strings.Repeat(`{"role":"user","content":"`+strings.Repeat("lorem ipsum dolor sit amet ", 40)+`"},`, 100) + `{"role":"user","content":"hi"}],"stream":true}`)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var m struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		json.Unmarshal(body, &m)
	}
}

func TestRewriteModelSplices(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{`{"model":"a","stream":true}`, `{"model":"b","stream":true}`},
		{`{ "max_tokens": 1, "model" : "a" }`, `{ "max_tokens": 1, "model" : "b" }`},
		{`{"messages":[{"model":"inner"}]}`, `{"model":"b","messages":[{"model":"inner"}]}`},
		{`{}`, `{"model":"b"}`},
		{` { } `, ` {"model":"b" } `},
	}
	for _, tc := range cases {
		got, err := rewriteModel([]byte(tc.in), "b")
		if err != nil || string(got) != tc.want {
			t.Errorf("rewriteModel(%s) = %s %v, want %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := rewriteModel([]byte(`[1]`), "b"); err == nil {
		t.Error("rewrote a non-object")
	}
}

func FuzzRewriteModel(f *testing.F) {
	for _, s := range []string{`{"model":"a","stream":true}`, `{}`, `{"x":[{"model":1}],"model":null}`} {
		f.Add(s, "m")
	}
	f.Fuzz(func(t *testing.T, body, model string) {
		out, err := rewriteModel([]byte(body), model)
		if err != nil || !json.Valid([]byte(body)) {
			return
		}
		var ref map[string]json.RawMessage
		if json.Unmarshal([]byte(body), &ref) != nil {
			return
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("rewriteModel(%q) made invalid JSON %q", body, out)
		}
		var m, want string
		vb, _ := json.Marshal(model) // invalid UTF-8 becomes U+FFFD
		json.Unmarshal(vb, &want)
		if json.Unmarshal(got["model"], &m) != nil || m != want {
			t.Errorf("model = %s, want %q", got["model"], want)
		}
		if len(got) != len(ref)+boolInt(ref["model"] == nil) {
			t.Errorf("keys changed: %v → %v", ref, got)
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

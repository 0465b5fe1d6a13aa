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

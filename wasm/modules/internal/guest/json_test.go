package guest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

var benchIn = []byte(`{"v":1,"op":"check","type":"api_key","secret":"sk-ant-api03-Zq7Xk2Lm9Pw4Rt6Yv8Ns3Bd5Hf_Gj-Cc1Zq7Xk2Lm9Pw4Rt6Yv8Ns3Bd5Hf_Gj-Cc1Zq7Xk2Lm9Pw4Rt6Yv8Ns3Bd5Hf_Gj-Cc1Zq7Xk","expiresAt":null,"now":1}`)

var jsonSeeds = []string{
	string(benchIn),
	`{"v":1,"op":"classify","status":429,"headers":{"Retry-After":"3"},"body":"{\"error\":\"x\u00e9\ud83d\ude00\"}"}`,
	`{"v":1,"op":"info"}`,
	`{"v":1,"op":"check","expiresAt":1700000000000,"now":1.5e12,"extra":[1,{"a":null},true]}`,
	`[1,2]`, `{"a":}`, `{"a":"\x01"}`, `"str"`, `{}`, ` { "v" : 1 } `, `{"v":1}x`,
}

func TestParseMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range jsonSeeds {
		t.Run(s, func(t *testing.T) { compareWithStdlib(t, []byte(s)) })
	}
}

func compareWithStdlib(t *testing.T, b []byte) {
	got, err := Parse(b)
	var want any
	werr := json.Unmarshal(b, &want)
	if (err == nil) != (werr == nil) {
		t.Fatalf("Parse(%q) err = %v, encoding/json err = %v", b, err, werr)
	}
	if err == nil && !reflect.DeepEqual(got, want) && json.Valid(b) {
		t.Errorf("Parse(%q) = %#v, want %#v", b, got, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) || !utf8.Valid(b) { // invalid UTF-8 is kept as is, not replaced
			Parse(b) // must not panic
			decodeRequest(b)
			return
		}
		if strings.Count(string(b), "[")+strings.Count(string(b), "{") > maxDepth {
			return
		}
		compareWithStdlib(t, b)
		Handle(b) // must not panic
	})
}

func TestDecodeRequest(t *testing.T) {
	t.Parallel()
	r, v, err := decodeRequest([]byte(jsonSeeds[1]))
	if err != nil || v != 1 || r.Op != "classify" || r.Status != 429 || r.Headers["retry-after"] != "3" || r.Body != `{"error":"xé😀"}` {
		t.Errorf("%+v %d %v", r, v, err)
	}
	r, _, err = decodeRequest([]byte(jsonSeeds[3]))
	if err != nil || r.ExpiresAt == nil || *r.ExpiresAt != 1700000000000 || r.Now != 1500000000000 {
		t.Errorf("%+v %v", r, err)
	}
}

func TestWriterIsValidJSON(t *testing.T) {
	t.Parallel()
	n := int64(-5)
	b := NewObject().Bool("ok", true).String("s", "quote\" back\\ nl\n ctl\x01 bad\xff é").Int("n", &n).Int("nil", nil).
		Open("set").String("a", "b").Close().Strings("list", []string{"x", "y\"z"}).Bytes()
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if got["s"] != "quote\" back\\ nl\n ctl\x01 bad\ufffd é" || got["n"] != float64(-5) || got["nil"] != nil {
		t.Errorf("%#v", got)
	}
}

func TestHandle(t *testing.T) {
	t.Parallel()
	Register(&Provider{Name: "t", Version: "9", Check: func(r Request) Check { return Check{Valid: r.Secret == "ok", Kind: "api_key"} }})
	tests := []struct{ in, want string }{
		{`{"v":1,"op":"info"}`, `{"ok":true,"provider":"t","version":"9","ops":["check"]}`},
		{`{"v":1,"op":"check","secret":"ok"}`, `{"ok":true,"valid":true,"kind":"api_key","expiresAt":null}`},
		{`{"v":1,"op":"headers"}`, `{"ok":false,"error":{"code":"unsupported_op","message":"op \"headers\" is not supported"}}`},
		{`{"v":2,"op":"info"}`, `{"ok":false,"error":{"code":"unsupported_version","message":"this module speaks ABI v1"}}`},
		{`nope`, `{"ok":false,"error":{"code":"bad_request","message":"request is not a valid JSON object"}}`},
	}
	for _, tt := range tests {
		if got := string(Handle([]byte(tt.in))); got != tt.want {
			t.Errorf("Handle(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}

	// ABI 1 revision 2 (info oauth) and 3 (accountId in, baseUrl out).
	Register(&Provider{Name: "o", Version: "1",
		OAuth: &OAuth{TokenURL: "https://t.example/token", ClientID: "c", Scopes: []string{"a", "b"}, RedirectPort: 1455,
			Params: map[string]string{"z": "1", "a": "2"}, AccountIDClaim: []string{"https://x/auth", "id"}},
		Headers: func(r Request) Headers {
			return Headers{Set: map[string]string{"acct": r.AccountID}, BaseURL: "https://b.example/x", StripPrefix: "/v1"}
		}})
	tests = []struct{ in, want string }{
		{`{"v":1,"op":"info"}`, `{"ok":true,"provider":"o","version":"1","ops":["headers"],"oauth":{"tokenUrl":"https://t.example/token","clientId":"c","scopes":["a","b"],"redirectPort":1455,"params":{"a":"2","z":"1"},"accountIdClaim":["https://x/auth","id"]}}`},
		{`{"v":1,"op":"headers","type":"oauth","secret":"s","accountId":"A-1"}`, `{"ok":true,"set":{"acct":"A-1"},"remove":[],"baseUrl":"https://b.example/x","stripPrefix":"/v1"}`},
	}
	for _, tt := range tests {
		if got := string(Handle([]byte(tt.in))); got != tt.want {
			t.Errorf("Handle(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestJWTExpiry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in          string
		ms          int64
		hasExp, jwt bool
	}{
		{"eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.sig", 1_700_000_000_000, true, true},
		{"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig", 0, false, true},
		{"eyJhbGciOiJIUzI1NiJ9.!!!.sig", 0, false, false},
		{"sk-abc", 0, false, false},
	}
	for _, tt := range tests {
		ms, hasExp, ok := JWTExpiry(tt.in)
		if ms != tt.ms || hasExp != tt.hasExp || ok != tt.jwt {
			t.Errorf("JWTExpiry(%q) = %d %v %v", tt.in, ms, hasExp, ok)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		Parse(benchIn)
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	for b.Loop() {
		decodeRequest(benchIn)
	}
}

func TestMentions(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", mentionWindow)
	tests := []struct {
		body    string
		phrases []string
		want    bool
	}{
		{"Your Credit Balance is too low", []string{"credit balance"}, true},
		{"abc", []string{"abcd"}, false},
		{"abcd", []string{"abcd"}, true},
		{"0123456789abcdefgh", []string{"gh"}, true},
		{"0123456789abcdefgh", []string{"zz", "9a"}, true},
		{"", []string{"a"}, false},
		{long + "credit balance", []string{"credit balance"}, false}, // past the window
	}
	for _, tt := range tests {
		r := Request{Body: tt.body}
		if got := r.Mentions(tt.phrases...); got != tt.want {
			t.Errorf("Mentions(%.30q, %q) = %v", tt.body, tt.phrases, got)
		}
	}
}

func FuzzContains(f *testing.F) {
	f.Add("hello world", "o w")
	f.Add("aaaaaaaaaaaaaaaab", "ab")
	f.Fuzz(func(t *testing.T, h, p string) {
		if got, want := contains(h, p), strings.Contains(h, p); got != want {
			t.Fatalf("contains(%q, %q) = %v, want %v", h, p, got, want)
		}
	})
}

package dotenv

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	got, err := Parse("x.env", "# c\n\nA=1\nexport B = two words # note\nC='lit # x'\nD=\"q\\\"\\n\"\nA=dup\nE=\n")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "1", "B": "two words", "C": "lit # x", "D": "q\"\n", "E": ""}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, bad := range []string{"NOEQUALS", "1A=x", "A='open", "A=\"open"} {
		_, err := Parse("x.env", "OK=1\n"+bad+"\n")
		var de *Error
		if !errors.As(err, &de) || de.Line != 2 || de.File != "x.env" {
			t.Errorf("%q: got %v, want an error on x.env:2", bad, err)
		}
	}
}

func TestUpsertKeepsOtherLines(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), ".env")
	os.WriteFile(p, []byte("# keys\nA=1\nexport B=2\n"), 0o600)
	if err := Upsert(p, "B", "new value"); err != nil {
		t.Fatal(err)
	}
	if err := Upsert(p, "C", "3"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != "# keys\nA=1\nB=\"new value\"\nC=3\n" {
		t.Errorf("got %q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"A=1\n", "export B='x'\n", "C=\"a\\\"b\" # c\n", "# only\n", "=x", "A='", "D=\"\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vars, err := Parse("f.env", s)
		if err != nil {
			var de *Error
			if !errors.As(err, &de) || de.Line < 1 {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		for k := range vars {
			if !ValidName(k) {
				t.Fatalf("invalid name accepted: %q", k)
			}
		}
	})
}

package scrub

import (
	"strings"
	"testing"
)

func TestMask(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"", ""},
		{"short", "••••"},
		{"fifteen-chars!!", "••••"},
		{"sk-ant-oat01-" + strings.Repeat("x", 91) + "wxyz", "sk-ant-oat01-…wxyz"},
		{"sk-ant-api03-" + strings.Repeat("x", 91) + "abcd", "sk-ant-api03-…abcd"},
		{"sk-proj-" + strings.Repeat("y", 40) + "1234", "sk-proj-…1234"},
		{"sk-or-v1-" + strings.Repeat("z", 60) + "9876", "sk-or-v1-…9876"},
		{"sk-" + strings.Repeat("q", 13) + "5555", "sk-…5555"},
		{"sk-" + strings.Repeat("q", 9) + "5555", "…5555"}, // too short to show the prefix
		{strings.Repeat("r", 30) + "tail", "…tail"},
	}
	for _, tc := range cases {
		got := Mask(tc.in)
		if got != tc.want {
			t.Errorf("Mask(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if len(tc.in) >= 16 {
			hidden := strings.TrimSuffix(strings.TrimPrefix(tc.in, strings.Split(got, "…")[0]), tc.in[len(tc.in)-4:])
			if len(hidden) < 12 {
				t.Errorf("Mask(%q) hides only %d characters", tc.in, len(hidden))
			}
		}
	}
}

package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/opensoul/opensoul/gateway/store"
)

// BenchmarkModelsStatus50 runs `opensoul models status` in-process over a
// store of 50 profiles of three providers, with the provider modules'
// compilation cache warm (the first iteration fills it).
func BenchmarkModelsStatus50(b *testing.B) {
	dir := b.TempDir()
	st := store.New(dir + "/state")
	now := time.Now().UnixMilli()
	err := st.UpdateProfiles("main", func(p *store.Profiles) error {
		for i := 0; i < 50; i++ {
			switch i % 3 {
			case 0:
				p.Profiles[fmt.Sprintf("anthropic:k%02d", i)] = store.Credential{Type: store.TypeAPIKey, Provider: "anthropic", Key: "sk-ant-api03-" + strings.Repeat("a", 91) + fmt.Sprintf("%04d", i)}
			case 1:
				p.Profiles[fmt.Sprintf("anthropic:t%02d", i)] = store.Credential{Type: store.TypeToken, Provider: "anthropic", Token: "sk-ant-oat01-" + strings.Repeat("b", 91) + fmt.Sprintf("%04d", i), Expires: now + int64(i)*3600_000}
			default:
				p.Profiles[fmt.Sprintf("openai:k%02d", i)] = store.Credential{Type: store.TypeAPIKey, Provider: "openai", Key: "sk-proj-" + strings.Repeat("c", 40) + fmt.Sprintf("%04d", i)}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	environ := []string{"OPENSOUL_STATE_DIR=" + dir + "/state", "HOME=" + dir, "XDG_CACHE_HOME=" + dir + "/cache"}
	args := []string{"models", "status"}
	if code := run(context.Background(), args, strings.NewReader(""), io.Discard, io.Discard, environ); code != 0 {
		b.Fatalf("exit %d", code)
	}
	b.ResetTimer()
	for b.Loop() {
		run(context.Background(), args, strings.NewReader(""), io.Discard, io.Discard, environ)
	}
}

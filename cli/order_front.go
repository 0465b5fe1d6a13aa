package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/opensoul/opensoul/gateway"
	"github.com/opensoul/opensoul/gateway/store"
)

// putFirstInOrder puts a newly saved profile at the front of the explicit
// order in force for its provider, so that re-authenticating takes effect:
// the agent store's order is edited in the store, config auth.order in the
// YAML text (comments kept). Without an explicit order nothing changes.
func (a *app) putFirstInOrder(agent, provider, id string) error {
	snap, err := gateway.LoadSnapshot(a.st, agent)
	if err != nil {
		return err
	}
	order, source := gateway.OrderInForce(snap, a.cfg.Auth.Order, provider)
	if source == gateway.OrderBuiltin {
		return nil
	}
	if len(order) > 0 && order[0] == id {
		fmt.Fprintf(a.stdout, "%s is already first in the %s order for %s\n", id, source, provider)
		return nil
	}
	front := append([]string{id}, slices.DeleteFunc(slices.Clone(order), func(s string) bool { return s == id })...)
	switch source {
	case gateway.OrderStore:
		// The agent's own order, or main's inherited one, becomes the
		// agent's own with the new profile first.
		if err := a.st.UpdateProfiles(agent, func(p *store.Profiles) error {
			p.Order[provider] = front
			return nil
		}); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Put %s first in the agent store's order for %s (%s): %s\n", id, provider, a.st.ProfilesPath(agent), strings.Join(front, " "))
	case gateway.OrderConfig:
		if err := upsertOrderFront(a.cfgFile, provider, id); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Put %s first in config auth.order.%s (%s): %s\n", id, provider, a.cfgFile, strings.Join(front, " "))
	}
	fmt.Fprintln(a.stdout, "  (pass --no-order to leave the order alone)")
	return nil
}

// upsertOrderFront edits auth.order.<provider> in the config text so that
// id comes first, keeping comments and every other byte. It handles a
// one-line flow list ([a, b]) and a block list (- a), and refuses others.
func upsertOrderFront(path, provider, id string) error {
	return store.WithLock(path, func() error {
		raw, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: not found", path)
		}
		if err != nil {
			return err
		}
		out, err := orderFrontText(path, raw, provider, id)
		if err != nil {
			return err
		}
		return store.WriteFileAtomic(path, out)
	})
}

func orderFrontText(path string, raw []byte, provider, id string) ([]byte, error) {
	root, err := parseRoot(path, raw)
	if err != nil {
		return nil, err
	}
	var seq *yaml.Node
	if order := mapChild(mapChild(root, "auth"), "order"); order != nil {
		for i := 0; i+1 < len(order.Content); i += 2 {
			if order.Content[i].Value == provider {
				seq = order.Content[i+1]
			}
		}
	}
	if seq == nil || seq.Kind != yaml.SequenceNode || len(seq.Content) == 0 {
		return nil, fmt.Errorf("%s: auth.order.%s is not a list; edit it by hand (not changed)", path, provider)
	}
	lines := splitLines(raw)
	var ids []string
	for _, n := range seq.Content {
		if n.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s: auth.order.%s holds a non-string; edit it by hand (not changed)", path, provider)
		}
		if n.Value != id {
			ids = append(ids, n.Value)
		}
	}
	ids = append([]string{id}, ids...)
	if seq.Style&yaml.FlowStyle != 0 {
		last := seq.Content[len(seq.Content)-1]
		if last.Line != seq.Line {
			return nil, fmt.Errorf("%s: auth.order.%s spans several lines; edit it by hand (not changed)", path, provider)
		}
		line := lines[seq.Line-1]
		start := seq.Column - 1
		end := strings.Index(line[start:], "]")
		if end < 0 {
			return nil, fmt.Errorf("%s:%d: cannot find the end of auth.order.%s (not changed)", path, seq.Line, provider)
		}
		lines[seq.Line-1] = line[:start] + "[" + strings.Join(ids, ", ") + line[start+end:]
		return []byte(strings.Join(lines, "")), nil
	}
	// Block list: drop id's own line, then insert it before the first item.
	first := seq.Content[0]
	if first.Value == id {
		return raw, nil
	}
	dash := strings.Repeat(" ", max(first.Column-3, 0)) + "- "
	for i := len(seq.Content) - 1; i >= 0; i-- {
		if n := seq.Content[i]; n.Value == id {
			lines = append(lines[:n.Line-1], lines[n.Line:]...)
		}
	}
	at := first.Line - 1
	lines = append(lines[:at], append([]string{dash + yamlKey(id) + "\n"}, lines[at:]...)...)
	return []byte(strings.Join(lines, "")), nil
}

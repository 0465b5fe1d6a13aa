package store

import (
	"testing"
)

// TestUpdateStateStamped: the update says which file it read and which it
// wrote, as StampOf sees them; an update that writes nothing says nothing;
// and the next update's Before is the last write's stamp, whoever wrote.
func TestUpdateStateStamped(t *testing.T) {
	s := New(t.TempDir())
	path := s.StatePath("main")
	set := func(reason string) func(*State) error {
		return func(st *State) error {
			st.UsageStats["anthropic:a"] = &UsageStats{DisabledReason: reason}
			return nil
		}
	}
	w, err := s.UpdateStateStamped("main", set("one"))
	if err != nil {
		t.Fatal(err)
	}
	if !w.OK || w.Before != (Stamp{}) || w.After != StampOf(path) || w.After == (Stamp{}) {
		t.Fatalf("first write: %+v; file %+v", w, StampOf(path))
	}
	if err := s.UpdateState("main", set("outside")); err != nil { // someone else's write
		t.Fatal(err)
	}
	outside := StampOf(path)
	if outside == w.After {
		t.Fatal("another write left the same stamp")
	}
	w2, err := s.UpdateStateStamped("main", set("two"))
	if err != nil {
		t.Fatal(err)
	}
	if !w2.OK || w2.Before != outside || w2.After != StampOf(path) {
		t.Fatalf("second write: %+v; read %+v, file %+v", w2, outside, StampOf(path))
	}
	w3, err := s.UpdateStateStamped("main", func(*State) error { return NoChange })
	if err != nil || w3.OK {
		t.Fatalf("an update that wrote nothing: %+v, %v", w3, err)
	}
}

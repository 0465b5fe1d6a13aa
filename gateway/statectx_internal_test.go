package gateway

import (
	"context"
	"testing"
)

// TestStateCtxCarriesStateAndCancel: the request's context carries its
// reqState through derived contexts (as the proxy and transport derive
// them), keeps the parent's values, and a caller that goes away still
// cancels what was derived from it.
func TestStateCtxCarriesStateAndCancel(t *testing.T) {
	type other struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), other{}, "v"))
	rs := &reqState{agent: "main"}
	rs.ctx = stateCtx{Context: parent, rs: rs}
	child, stop := context.WithCancel(context.WithoutCancel(&rs.ctx))
	defer stop()
	if stateOf(child) != rs || stateOf(&rs.ctx) != rs {
		t.Fatal("stateOf does not find the request's state")
	}
	if stateOf(parent) != nil {
		t.Fatal("the parent has no state")
	}
	if rs.ctx.Value(other{}) != "v" {
		t.Fatal("the parent's values are lost")
	}
	derived, stop2 := context.WithCancel(&rs.ctx)
	defer stop2()
	cancel()
	<-derived.Done() // hangs (test timeout) if the cancel does not reach it
	if rs.ctx.Err() == nil {
		t.Fatal("the state context is not cancelled with its parent")
	}
}

package fault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestKindOf(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	base := io.ErrUnexpectedEOF
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want Kind
	}{
		{"plain error is a node failure", context.Background(), base, Node},
		{"deterministic through a wrap", context.Background(), fmt.Errorf("building: %w", AsDeterministic(base)), Deterministic},
		{"local through a join", context.Background(), errors.Join(errors.New("x"), AsLocal(base)), Local},
		{"outer mark wins", context.Background(), Mark(Node, fmt.Errorf("w: %w", AsLocal(base))), Node},
		{"a done context is a cancellation", cancelled, AsDeterministic(base), Cancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := KindOf(tc.ctx, tc.err); got != tc.want {
				t.Errorf("KindOf = %v, want %v", got, tc.want)
			}
			if !errors.Is(tc.err, base) {
				t.Errorf("the cause is lost: %v", tc.err)
			}
		})
	}
}

func TestMarkKeepsTextAndNil(t *testing.T) {
	if Mark(Local, nil) != nil {
		t.Error("Mark(nil) is not nil")
	}
	err := AsDeterministic(errors.New("RUN exited 1"))
	if err.Error() != "RUN exited 1" {
		t.Errorf("text = %q", err.Error())
	}
	if !Is(err, Deterministic) || Is(err, Local) {
		t.Error("Is disagrees with the mark")
	}
}

func TestFailOver(t *testing.T) {
	for k, want := range map[Kind]bool{Node: true, Deterministic: false, Local: false, Cancelled: false} {
		if k.FailOver() != want {
			t.Errorf("%v.FailOver() = %v", k, !want)
		}
		if k.String() == "" {
			t.Errorf("%d has no name", k)
		}
	}
}

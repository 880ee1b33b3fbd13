// Package fault is farm's one error model. An error keeps its causes
// (errors.Is and errors.As see through every wrap) and carries, at most
// once per wrap, a Kind that answers the only question the runner asks of
// it: would another node help?
package fault

import (
	"context"
	"errors"
)

// Kind says what a failure means for the job.
type Kind int

const (
	// Node: the node, its podman service or the connection to it failed;
	// another node may well succeed. Errors that carry no Kind are this.
	Node Kind = iota
	// Deterministic: the failure would be the same on every node (a build
	// that ran and failed, a request the service refused as invalid, the
	// user's registry refusing a push): never retried elsewhere.
	Deterministic
	// Local: this machine's side failed (the local podman service, the
	// transfer registry): another node would not help; the job stops.
	Local
	// Cancelled: the run was interrupted or the job timed out.
	Cancelled
)

func (k Kind) String() string {
	switch k {
	case Deterministic:
		return "deterministic"
	case Local:
		return "local"
	case Cancelled:
		return "cancelled"
	}
	return "node"
}

// FailOver reports whether a job that failed this way should move to its
// next node.
func (k Kind) FailOver() bool { return k == Node }

// Error is an error marked with its Kind. Its text is the cause's text.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Mark returns err marked as k (nil stays nil). An outer mark wins over an
// inner one: a caller that knows better may reclassify.
func Mark(k Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: k, Err: err}
}

// AsDeterministic marks err as a failure every node would share.
func AsDeterministic(err error) error { return Mark(Deterministic, err) }

// AsLocal marks err as a failure on this machine's side.
func AsLocal(err error) error { return Mark(Local, err) }

// KindOf classifies err from a job run under ctx: Cancelled when ctx is
// done (whatever err says: a cancelled request fails in many ways), else
// the outermost mark, else Node.
func KindOf(ctx context.Context, err error) Kind {
	if ctx.Err() != nil {
		return Cancelled
	}
	return markOf(err)
}

// Is reports whether err carries the mark k (the outermost; none is Node).
func Is(err error, k Kind) bool { return markOf(err) == k }

func markOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Node
}

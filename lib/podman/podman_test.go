package podman_test

import (
	"context"
	"errors"
	"testing"

	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/farm-build/farm/lib/podman"
	"github.com/farm-build/farm/lib/podmantest"
)

// A client dialled under one context and used under another answers
// context.Cause with the call's own cause, never the dial's (issue 15
// item 11): a job must not report another job's cancellation.
func TestBindAnswersTheCallersCause(t *testing.T) {
	fake := podmantest.New(t)
	dialCtx, cancelDial := context.WithCancelCause(context.Background())
	c, err := podman.Connect(dialCtx, fake.URI)
	if err != nil {
		t.Fatal(err)
	}
	dialCause := errors.New("the dialling job was cancelled")
	cancelDial(dialCause)

	bound := c.Bind(context.Background())
	if bound.Err() != nil || context.Cause(bound) != nil {
		t.Fatalf("a call under a live context sees Err %v, Cause %v: the dial's cancellation leaked", bound.Err(), context.Cause(bound))
	}
	if _, err := images.Exists(bound, "x", nil); err != nil {
		t.Fatalf("the client does not work after its dial context ended: %v", err)
	}

	callCtx, cancelCall := context.WithCancelCause(context.Background())
	callCause := errors.New("this job's own cause")
	cancelCall(callCause)
	if got := context.Cause(c.Bind(callCtx)); got != callCause {
		t.Errorf("Cause = %v, want %v", got, callCause)
	}
	if _, err := images.Exists(c.Bind(callCtx), "x", nil); !errors.Is(err, callCause) {
		t.Errorf("a call under a cancelled context: %v, want its own cause", err)
	}
}

func TestConnectFailsOnDeadService(t *testing.T) {
	fake := podmantest.New(t)
	fake.Close()
	if _, err := podman.Connect(context.Background(), fake.URI); err == nil {
		t.Fatal("Connect to a stopped service succeeded")
	}
}

func TestGetAndURI(t *testing.T) {
	fake := podmantest.New(t)
	c, err := podman.Connect(context.Background(), fake.URI)
	if err != nil {
		t.Fatal(err)
	}
	if c.URI() != fake.URI || c.Scheme() != "unix" {
		t.Errorf("URI %q scheme %q", c.URI(), c.Scheme())
	}
	var info struct {
		Host struct{ Arch string } `json:"host"`
	}
	if err := c.Get(context.Background(), "/info", &info); err != nil || info.Host.Arch != "amd64" {
		t.Errorf("GET /info: %+v %v", info, err)
	}
	if err := c.Get(context.Background(), "/nope", nil); err == nil {
		t.Error("GET of an unknown endpoint succeeded")
	}
	var nilClient *podman.Client
	if nilClient.URI() == "" {
		t.Error("a nil client has no printable URI")
	}
}

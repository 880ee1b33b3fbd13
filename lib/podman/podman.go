// Package podman is farm's client of one podman service: a pkg/bindings
// connection made once, used with the caller's context on every call.
//
// pkg/bindings keeps its client in a context value under an unexported key,
// so a client made once cannot be handed to pkg/bindings with a new context
// except through a context that carries its values. Client hides that: it
// keeps the connection's values, never a deadline or a cancellation, and
// Bind joins them to each call's own context.
package podman

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/blang/semver/v4"
	"github.com/containers/podman/v4/pkg/bindings"
)

// Client is a connection to one podman service.
type Client struct {
	conn *bindings.Connection
	// values holds pkg/bindings' values (the connection, the service's
	// API version). It is detached from the dial's context
	// (context.WithoutCancel): it answers no cancellation, so a bound
	// context's Done, Err and Cause are its own.
	values context.Context
}

// Connect dials uri (unix://, tcp:// or ssh://) and checks that the
// service answers, bounded by ctx. Nothing of ctx outlives the call.
func Connect(ctx context.Context, uri string) (*Client, error) {
	return ConnectIdentity(ctx, uri, "")
}

// ConnectIdentity is Connect with an SSH identity file for an ssh:// uri
// (a system connection's identity); empty: $CONTAINER_SSHKEY, else the
// agent, as pkg/bindings does.
func ConnectIdentity(ctx context.Context, uri, identity string) (*Client, error) {
	bctx, err := bindings.NewConnectionWithIdentity(ctx, uri, identity, false)
	if err != nil {
		return nil, err
	}
	c, err := bindings.GetClient(bctx)
	if err != nil {
		return nil, err
	}
	return &Client{conn: c, values: context.WithoutCancel(bctx)}, nil
}

// URI is the service's address.
func (c *Client) URI() string {
	if c == nil || c.conn == nil || c.conn.URI == nil {
		return "(no podman service)"
	}
	return c.conn.URI.String()
}

// Version is the service's API version (podman's own version), as it
// answered when the connection was made; nil when it did not say.
func (c *Client) Version() *semver.Version { return bindings.ServiceVersion(c.values) }

// Scheme is the URI's scheme: unix, tcp or ssh.
func (c *Client) Scheme() string { return c.conn.URI.Scheme }

// Bind returns ctx carrying the client, for a pkg/bindings call (images.*,
// manifests.*): the call ends when ctx ends, and context.Cause of the
// result is ctx's.
func (c *Client) Bind(ctx context.Context) context.Context {
	return bound{Context: ctx, values: c.values}
}

// Do sends one request to the service (see bindings.Connection.DoRequest).
func (c *Client) Do(ctx context.Context, body io.Reader, method, endpoint string, params url.Values, header http.Header, pathValues ...string) (*bindings.APIResponse, error) {
	return c.conn.DoRequest(c.Bind(ctx), body, method, endpoint, params, header, pathValues...)
}

// Get sends a GET and decodes the JSON answer into out.
func (c *Client) Get(ctx context.Context, endpoint string, out any, pathValues ...string) error {
	resp, err := c.Do(ctx, nil, http.MethodGet, endpoint, nil, nil, pathValues...)
	if err != nil {
		return fmt.Errorf("GET %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	if err := resp.Process(out); err != nil {
		return fmt.Errorf("GET %s: %w", endpoint, err)
	}
	return nil
}

// bound takes values from the client first and everything else, above
// all cancellation, from the call's context.
type bound struct {
	context.Context
	values context.Context
}

func (b bound) Value(key any) any {
	if v := b.values.Value(key); v != nil {
		return v
	}
	return b.Context.Value(key)
}

package conn

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHOptions are the client-side settings of an SSH connection. farm dials
// SSH itself instead of letting pkg/bindings do it, because the bindings
// trust unknown host keys on first use, prompt on stdin (which is the record
// stream here) and have a fixed 40 s dial timeout.
type SSHOptions struct {
	// KnownHosts files; empty means ~/.ssh/known_hosts and
	// /etc/ssh/ssh_known_hosts (those that exist).
	KnownHosts []string
	// AgentSocket is $SSH_AUTH_SOCK; empty means no agent.
	AgentSocket string
}

// DefaultSSHOptions reads the environment the way ssh(1) and podman do;
// FARM_KNOWN_HOSTS (colon-separated) replaces the known_hosts files.
func DefaultSSHOptions() SSHOptions {
	opts := SSHOptions{AgentSocket: os.Getenv("SSH_AUTH_SOCK")}
	if kh := os.Getenv("FARM_KNOWN_HOSTS"); kh != "" {
		opts.KnownHosts = filepath.SplitList(kh)
		return opts
	}
	if home, err := os.UserHomeDir(); err == nil {
		opts.KnownHosts = append(opts.KnownHosts, filepath.Join(home, ".ssh", "known_hosts"))
	}
	opts.KnownHosts = append(opts.KnownHosts, "/etc/ssh/ssh_known_hosts")
	return opts
}

// HostKeyError says why a node's host key was refused and what to do.
type HostKeyError struct {
	Host       string
	KnownHosts []string
	Changed    bool
}

func (e *HostKeyError) Error() string {
	files := strings.Join(e.KnownHosts, ", ")
	if e.Changed {
		return fmt.Sprintf("host key of %s has CHANGED and does not match known_hosts (%s); refusing to connect "+
			"(someone may be intercepting the connection); if the node was reinstalled, remove the old key with "+
			"`ssh-keygen -R '%s'` and verify the new one", e.Host, files, e.Host)
	}
	file := "~/.ssh/known_hosts"
	if len(e.KnownHosts) > 0 {
		file = e.KnownHosts[0]
	}
	return fmt.Sprintf("host key of %s is not in known_hosts (%s); refusing unknown hosts: verify the key and add it, "+
		"e.g. `ssh %s true` once, or `ssh-keyscan %s >> %s` and compare its fingerprint (ssh-keygen -lf) with the host's",
		e.Host, files, sshHint(e.Host), sshHint(e.Host), file)
}

// sshHintUser is sshHint with the user: "-p 2221 root@127.0.0.1".
func sshHintUser(user, hostport string) string {
	if h, p, err := net.SplitHostPort(hostport); err == nil && p != "22" {
		return "-p " + p + " " + user + "@" + h
	}
	return user + "@" + hostport
}

func identityOrKey(identity string) string {
	if identity == "" {
		return "KEY"
	}
	return identity
}

func sshHint(host string) string {
	if h, p, err := net.SplitHostPort(host); err == nil && p != "22" {
		return "-p " + p + " " + h
	}
	return host
}

// dialSSH connects and authenticates, bounded by ctx (cancel or deadline).
func dialSSH(ctx context.Context, user, hostport, identity string, opts SSHOptions) (*ssh.Client, error) {
	auth, closeAuth, err := authMethods(identity, opts.AgentSocket)
	if err != nil {
		return nil, err
	}
	defer closeAuth()
	hostKeyCallback, algorithms, err := hostKeyChecker(hostport, opts.KnownHosts)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:              user,
		Auth:              auth,
		HostKeyCallback:   hostKeyCallback,
		HostKeyAlgorithms: algorithms,
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w; is the node up, and sshd listening on that port? try: ssh %s true", hostport, err, sshHintUser(user, hostport))
	}
	// The handshake reads from the network with no timeout of its own: a
	// node that accepts TCP but never speaks (a blackholed port) would hang
	// forever, so closing the socket when ctx ends is what bounds it.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	c, chans, reqs, err := ssh.NewClientConn(raw, hostport, cfg)
	if !stop() {
		if err == nil {
			c.Close()
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", hostport, context.Cause(ctx))
	}
	if err != nil {
		raw.Close()
		var hk *HostKeyError
		if errors.As(err, &hk) {
			return nil, hk
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("ssh to %s as %s: authentication failed (identity %q): %w; is its public key in %s's ~/.ssh/authorized_keys on the node? try: ssh -i %s %s true",
				hostport, user, identity, err, user, identityOrKey(identity), sshHintUser(user, hostport))
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w; is an SSH server listening there? try: ssh %s true", hostport, err, sshHintUser(user, hostport))
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// authMethods never prompts: an encrypted key without an agent is an error
// that says how to fix it, never a read from stdin.
func authMethods(identity, agentSocket string) ([]ssh.AuthMethod, func(), error) {
	var methods []ssh.AuthMethod
	closeAll := func() {}
	if identity != "" {
		pem, err := os.ReadFile(identity)
		if err != nil {
			return nil, nil, fmt.Errorf("reading identity file: %w; fix the connection's identity (podman system connection add --identity KEY ...) or CONTAINER_SSHKEY", err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		var missing *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &missing):
			if agentSocket == "" {
				return nil, nil, fmt.Errorf("identity %s is protected by a passphrase and no ssh-agent is running; farm never prompts (stdin carries records): load the key with `ssh-add %s`", identity, identity)
			}
		case err != nil:
			return nil, nil, fmt.Errorf("identity %s: %w; is it an SSH private key (not the .pub)? check with ssh-keygen -y -f %s", identity, err, identity)
		default:
			methods = append(methods, ssh.PublicKeys(signer))
		}
	}
	if agentSocket != "" {
		if sock, err := net.Dial("unix", agentSocket); err == nil {
			methods = append(methods, ssh.PublicKeysCallback(agent.NewClient(sock).Signers))
			closeAll = func() { sock.Close() }
		}
	}
	if len(methods) == 0 {
		return nil, nil, errors.New("no SSH identity for this connection and no ssh-agent: give the connection an identity (`podman system connection add --identity KEY ...`) or set CONTAINER_SSHKEY")
	}
	return methods, closeAll, nil
}

// hostKeyChecker verifies strictly against known_hosts and limits the host
// key algorithms to the types known_hosts has for this host: otherwise the
// server may present another key type than the one recorded and a good host
// would look unknown.
func hostKeyChecker(hostport string, files []string) (ssh.HostKeyCallback, []string, error) {
	var existing []string
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			existing = append(existing, f)
		}
	}
	if len(existing) == 0 {
		return nil, nil, &HostKeyError{Host: knownhosts.Normalize(hostport), KnownHosts: files}
	}
	check, err := knownhosts.New(existing...)
	if err != nil {
		return nil, nil, fmt.Errorf("reading known_hosts: %w; fix or remove the bad line (ssh-keygen -R HOST removes a host's lines)", err)
	}
	callback := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			return &HostKeyError{Host: knownhosts.Normalize(hostport), KnownHosts: existing, Changed: len(ke.Want) > 0}
		}
		return err
	}
	return callback, knownAlgorithms(check, hostport), nil
}

// knownAlgorithms asks the known_hosts checker which keys it has for the
// host, by presenting a key it cannot have: the KeyError lists them.
func knownAlgorithms(check ssh.HostKeyCallback, hostport string) []string {
	// A fixed key derived from a zero seed: no known_hosts file lists it.
	probe, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	if err != nil {
		return nil
	}
	err = check(hostport, &net.TCPAddr{IP: net.IPv4zero}, probe)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil
	}
	var algos []string
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			algos = append(algos, t)
		}
	}
	return algos
}

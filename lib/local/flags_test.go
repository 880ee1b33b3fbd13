package local

import (
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// The local store answers within DefaultTimeout, or the stage's --timeout
// when that is shorter (a job timeout of 30m must not let a silent store
// hang the run for 30m); a stage without --timeout gets the default.
func TestRequestFromTimeout(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag bool
		want time.Duration
	}{
		{args: []string{"--timeout", "3s"}, flag: true, want: 3 * time.Second},
		{args: []string{"--timeout", "30m"}, flag: true, want: 0},
		{args: nil, flag: true, want: 0},
		{args: []string{"--url", "ssh://a@b/s.sock"}, want: 0},
	} {
		var got Request
		flags := Flags()
		if tc.flag {
			flags = append(flags, &cli.DurationFlag{Name: "timeout"})
		}
		app := &cli.App{Flags: flags, Action: func(c *cli.Context) error { got = RequestFrom(c); return nil }}
		if err := app.Run(append([]string{"x"}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		if got.Timeout != tc.want {
			t.Errorf("%v: timeout %s, want %s", tc.args, got.Timeout, tc.want)
		}
		if len(got.SSH.KnownHosts) == 0 {
			t.Errorf("%v: no known_hosts files: the store's host key could not be checked", tc.args)
		}
	}
}

package local

import (
	"github.com/farm-build/farm/lib/conn"
	"github.com/urfave/cli/v2"
)

// Flags are podman's global flags that name the local store (podman's own
// service), for farm-build and farm-manifest.
func Flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "connection", Aliases: []string{"c"}, Usage: "the local store: system connection `NAME` (podman system connection list), as podman --connection", DefaultText: "CONTAINER_HOST, CONTAINER_CONNECTION, the default connection, else the local socket"},
		&cli.StringFlag{Name: "url", Usage: "the local store: `URI` of a podman service (unix://, ssh://, tcp://), as podman --url; wins over --connection", DefaultText: "as --connection"},
	}
}

// RequestFrom reads Flags, and the stage's --timeout when it has one: the
// local store must answer within DefaultTimeout, or --timeout when shorter.
func RequestFrom(c *cli.Context) Request {
	req := Request{URL: c.String("url"), Connection: c.String("connection"), SSH: conn.DefaultSSHOptions()}
	if t := c.Duration("timeout"); t > 0 && t < DefaultTimeout {
		req.Timeout = t
	}
	return req
}

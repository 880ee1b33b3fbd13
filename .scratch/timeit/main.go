package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/farm-build/farm/lib/conn"
	"github.com/farm-build/farm/lib/node"
)

func main() {
	ctx := context.Background()
	t := conn.Target{Name: "p5", URI: os.Args[1], Identity: os.Args[2]}
	for i := 0; i < 3; i++ {
		t0 := time.Now()
		s, err := conn.Open(ctx, t, conn.DefaultSSHOptions())
		if err != nil {
			panic(err)
		}
		t1 := time.Now()
		c, err := s.Connect(ctx)
		if err != nil {
			panic(err)
		}
		t2 := time.Now()
		node.ReadInfo(ctx, c)
		t3 := time.Now()
		resp, _ := c.Do(ctx, nil, http.MethodGet, "/version", nil, nil)
		resp.Body.Close()
		t4 := time.Now()
		s.Run(ctx, "echo hi")
		t5 := time.Now()
		fmt.Printf("open %v connect %v info %v version %v run %v\n", t1.Sub(t0).Round(time.Millisecond), t2.Sub(t1).Round(time.Millisecond), t3.Sub(t2).Round(time.Millisecond), t4.Sub(t3).Round(time.Millisecond), t5.Sub(t4).Round(time.Millisecond))
		s.Close()
	}
}

// Command context measures how farm-build's context archiving
// (lib/buildctx) behaves on a real directory at several gzip levels: the
// time to walk, tar and compress it, the compressed size, and the time to
// get it to the nodes over links of a few speeds: archiving happens once,
// then -nodes uploads share this machine's uplink.
//
//	go run ./bench/context -dir ~/src/project -f ~/src/project/Containerfile
//
// Run it twice: the first run reads the files from disk, the second from the
// page cache, which is what a repeated build sees.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/farm-build/farm/lib/buildctx"
)

func main() {
	dir := flag.String("dir", ".", "build context directory")
	containerfile := flag.String("f", "", "Containerfile (default: the context's Containerfile or Dockerfile)")
	levels := flag.String("levels", "1,2,4,6,9", "comma-separated gzip levels to try (-1: default, -2: Huffman only)")
	runs := flag.Int("runs", 3, "runs per level; the fastest counts")
	links := flag.String("links", "100,1000,10000", "comma-separated uplink speeds in Mbit/s")
	nodes := flag.Int("nodes", 1, "nodes the context is uploaded to")
	flag.Parse()
	if err := run(*dir, *containerfile, *levels, *links, *runs, *nodes, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "context:", err)
		os.Exit(1)
	}
}

func run(dir, containerfile, levelList, linkList string, runs, nodes int, out io.Writer) error {
	levels, err := ints(levelList)
	if err != nil {
		return fmt.Errorf("-levels: %w", err)
	}
	linkSpeeds, err := ints(linkList)
	if err != nil {
		return fmt.Errorf("-links: %w", err)
	}
	if runs < 1 || nodes < 1 {
		return fmt.Errorf("-runs %d, -nodes %d: want at least 1", runs, nodes)
	}
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "level\tfiles\ttar MB\tgzip MB\tsize %\ttime\tMB/s\t")
	for _, l := range linkSpeeds {
		fmt.Fprintf(tw, "total @%d Mbit/s\t", l)
	}
	fmt.Fprintln(tw)
	warned := false
	for _, level := range levels {
		var best time.Duration
		var c *buildctx.Context
		for range runs {
			opts := buildctx.Options{Dir: dir, Containerfile: containerfile, Level: level}
			if !warned {
				opts.Warn = func(msg string) { fmt.Fprintln(os.Stderr, "warning:", msg) }
			}
			start := time.Now()
			got, err := buildctx.Build(context.Background(), opts)
			if err != nil {
				return err
			}
			warned = true
			d := time.Since(start)
			if c != nil {
				c.Close()
			}
			c = got
			if best == 0 || d < best {
				best = d
			}
		}
		fmt.Fprintf(tw, "%d\t%d\t%.1f\t%.1f\t%.1f\t%v\t%.0f\t",
			level, c.Files, mb(c.RawBytes), mb(c.Size()), 100*float64(c.Size())/float64(c.RawBytes),
			best.Round(time.Millisecond), mb(c.RawBytes)/best.Seconds())
		for _, l := range linkSpeeds {
			upload := time.Duration(float64(nodes) * float64(c.Size()) * 8 / (float64(l) * 1e6) * float64(time.Second))
			fmt.Fprintf(tw, "%v\t", (best + upload).Round(time.Millisecond))
		}
		fmt.Fprintln(tw)
		c.Close()
	}
	return tw.Flush()
}

func mb(n int64) float64 { return float64(n) / 1e6 }

func ints(list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

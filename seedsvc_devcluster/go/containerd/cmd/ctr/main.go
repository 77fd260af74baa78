// Command ctr is the upstream containerd client; the node mode imports its images with it.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/cmd/ctr/app"
)

func main() {
	if err := app.New().Run(context.Background(), os.Args); err != nil {
		_, _ = fmt.Fprintln(os.Stderr, "ctr:", err)
		os.Exit(1)
	}
}

// Command compose-config loads a compose file the way `docker compose config`
// does, with compose-go, the loader Docker Compose v2 is built on: the
// Compose Specification's schema, interpolation (${VAR:?message} included),
// YAML merges, normalisation and the consistency checks (services, networks,
// volumes and configs that are referred to must exist). It prints the
// resolved project as JSON, or the error and exit status 1. No Docker engine
// is needed, which is why the tests use it (tests/test_compose.py).
//
// Usage: compose-config COMPOSE_FILE [ENV_FILE]
// Variables come from the environment, then ENV_FILE if given.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 {
		fmt.Fprintln(os.Stderr, "usage: compose-config COMPOSE_FILE [ENV_FILE]")
		os.Exit(2)
	}
	options := []cli.ProjectOptionsFn{
		cli.WithOsEnv,
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
	}
	if len(os.Args) == 3 {
		options = append(options, cli.WithEnvFiles(os.Args[2]), cli.WithDotEnv)
	}
	projectOptions, err := cli.NewProjectOptions([]string{os.Args[1]}, options...)
	if err != nil {
		fail(err)
	}
	project, err := projectOptions.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(out)
	fmt.Println()
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "compose-config: %v\n", err)
	os.Exit(1)
}

package cli

import (
	"fmt"
	"time"

	"github.com/msync/msync/bench"
	"github.com/spf13/cobra"
)

func newBenchCommand(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Generate realistic migration trees and mutate them",
	}
	var seed uint64
	var scale float64
	gen := &cobra.Command{
		Use:   "gen DIR",
		Short: "Build a tree shaped like an old community server (homes, darcs, mailman, exim)",
		Args:  usageArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t := time.Now()
			st, err := bench.Gen(args[0], seed, scale)
			if err != nil {
				return fatal(fmt.Errorf("bench gen: %w", err))
			}
			fmt.Fprintf(env.Stdout, "generated %s: %d files, %d dirs, %d symlinks, %s in %s\n", args[0], st.Files, st.Dirs, st.Links, humanBytes(st.Bytes), time.Since(t).Round(time.Millisecond))
			return nil
		},
	}
	gen.Flags().Uint64Var(&seed, "seed", 1, "random seed")
	gen.Flags().Float64Var(&scale, "scale", 0.1, "size: 1.0 is about 100k files and 1 GB")
	var round int
	var mseed uint64
	mutate := &cobra.Command{
		Use:   "mutate DIR",
		Short: "Apply one realistic day of changes to a generated tree",
		Args:  usageArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := bench.Mutate(args[0], mseed, round)
			if err != nil {
				return fatal(fmt.Errorf("bench mutate: %w", err))
			}
			fmt.Fprintf(env.Stdout, "mutated %s (round %d): %d files written, %s\n", args[0], round, st.Files, humanBytes(st.Bytes))
			return nil
		},
	}
	mutate.Flags().Uint64Var(&mseed, "seed", 1, "random seed")
	mutate.Flags().IntVar(&round, "round", 1, "mutation round (each round changes different things)")
	c.AddCommand(gen, mutate)
	return c
}

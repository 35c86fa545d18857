package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/recipestore"
)

// recipeStoreCommands are `ghlflow recipe put|list|remove`, writing to
// stdout and stderr.
func recipeStoreCommands(stdout, stderr io.Writer) []*command {
	leaf := func(name, summary, args string, minArgs, maxArgs int, act func(ctx context.Context, st *recipestore.Store, pos []string) error) *command {
		return &command{name: name, summary: summary, args: args, details: recipeStoreDetails, setup: func(fs *flag.FlagSet) runFunc {
			var redisURL, prefix string
			redisFlag(fs, &redisURL)
			fs.StringVar(&prefix, "prefix", engine.DefaultPrefix, "prefix of the engine's Redis keys")
			return func(ctx context.Context, pos []string) int {
				if len(pos) < minArgs || (maxArgs >= 0 && len(pos) > maxArgs) {
					fmt.Fprintf(stderr, "usage: ghlflow recipe %s %s\nRun 'ghlflow recipe %s --help' for its flags.\n", name, args, name)
					return 2
				}
				rdb, err := dialRedis(redisURL)
				if err != nil {
					fmt.Fprintln(stderr, "ghlflow recipe:", err)
					return 2
				}
				defer rdb.Close()
				if err := act(ctx, recipestore.New(rdb, prefix), pos); err != nil {
					fmt.Fprintln(stderr, "ghlflow recipe "+name+":", err)
					return 1
				}
				return 0
			}
		}}
	}
	return []*command{
		leaf("put", "check recipe files and store them in Redis, where every engine loads them", "FILE...", 1, -1,
			func(ctx context.Context, st *recipestore.Store, pos []string) error {
				return putRecipes(ctx, st, pos, stdout)
			}),
		leaf("list", "list the recipes stored in Redis", "", 0, 0,
			func(ctx context.Context, st *recipestore.Store, _ []string) error {
				return listRecipes(ctx, st, stdout)
			}),
		leaf("remove", "remove a recipe stored in Redis", "NAME", 1, 1, func(ctx context.Context, st *recipestore.Store, pos []string) error {
			if err := st.Remove(ctx, pos[0]); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "recipe %s removed\n", pos[0])
			return nil
		}),
	}
}

const recipeStoreDetails = `put stores recipes in Redis after checking them against the catalog (a
stored recipe with the same name is replaced); every running engine loads
them within a few seconds. A stored recipe named like a recipe file is
refused by the engines, which keep their running recipes.`

// runRecipeStore runs `ghlflow recipe put|list|remove ARGS` with the given
// output.
func runRecipeStore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return execute(ctx, &command{name: "recipe", summary: "recipes stored in Redis", subs: recipeStoreCommands(stdout, stderr)},
		"ghlflow recipe", args, stdout, stderr)
}

// putRecipes checks every file first and stores them only when all pass.
func putRecipes(ctx context.Context, st *recipestore.Store, files []string, out io.Writer) error {
	cat, err := catalog.Default()
	if err != nil {
		return err
	}
	loader := &catalog.RecipeLoader{Catalog: cat}
	texts := map[string][]byte{}
	var names []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		r, err := loader.Parse(f, data)
		if err != nil {
			return err
		}
		if _, dup := texts[r.Name]; dup {
			return fmt.Errorf("%s:%d: recipe name %q is given twice", f, r.Line, r.Name)
		}
		texts[r.Name] = data
		names = append(names, r.Name)
	}
	for _, name := range names {
		if err := st.Put(ctx, name, texts[name]); err != nil {
			return err
		}
		fmt.Fprintf(out, "recipe %s stored\n", name)
	}
	return nil
}

func listRecipes(ctx context.Context, st *recipestore.Store, out io.Writer) error {
	cat, err := catalog.Default()
	if err != nil {
		return err
	}
	names, texts, err := st.All(ctx)
	if err != nil {
		return err
	}
	loader := &catalog.RecipeLoader{Catalog: cat}
	for _, name := range names {
		r, err := loader.Parse(recipestore.Source(name), texts[name])
		if err != nil {
			fmt.Fprintf(out, "%s\t(invalid: %s)\n", name, strings.SplitN(err.Error(), "\n", 2)[0])
			continue
		}
		fmt.Fprintf(out, "%s\t%s every %s, %d step(s)\n", name, r.Trigger.Op, r.Trigger.Every, len(r.Steps))
	}
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ghlflow/ghlflow/catalog"
	"github.com/ghlflow/ghlflow/engine"
	"github.com/ghlflow/ghlflow/engine/recipestore"
)

const recipeStoreUsage = `usage: ghlflow recipe put FILE... | list | remove NAME  [--redis URL] [--prefix P]

put stores recipes in Redis after checking them against the catalog (a
stored recipe with the same name is replaced); every running engine loads
them within a few seconds. A stored recipe named like a recipe file is
refused by the engines, which keep their running recipes.
`

// runRecipeStore is `ghlflow recipe put|list|remove`.
func runRecipeStore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("recipe "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	redisURL := fs.String("redis", envOr("REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis URL")
	prefix := fs.String("prefix", engine.DefaultPrefix, "prefix of the engine's Redis keys")
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if args = fs.Args(); len(args) > 0 {
			pos, args = append(pos, args[0]), args[1:]
		}
	}
	rdb, err := dialRedis(*redisURL)
	if err != nil {
		fmt.Fprintln(stderr, "ghlflow recipe: --redis:", err)
		return 2
	}
	defer rdb.Close()
	st := recipestore.New(rdb, *prefix)
	switch {
	case sub == "put" && len(pos) > 0:
		err = putRecipes(ctx, st, pos, stdout)
	case sub == "list" && len(pos) == 0:
		err = listRecipes(ctx, st, stdout)
	case sub == "remove" && len(pos) == 1:
		if err = st.Remove(ctx, pos[0]); err == nil {
			fmt.Fprintf(stdout, "recipe %s removed\n", pos[0])
		}
	default:
		fmt.Fprint(stderr, recipeStoreUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "ghlflow recipe "+sub+":", err)
		return 1
	}
	return 0
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

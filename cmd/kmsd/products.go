package main

import (
	"encoding/json"
	"fmt"
	"os"

	"kmsd/internal/products"
)

func productsMain(args []string) int {
	asJSON := false
	query := ""
	for _, a := range args {
		switch a {
		case "--json":
			asJSON = true
		case "-h", "--help":
			fmt.Println("Usage: kmsd products [filter] [--json]\n\nLists the products numbered as vlmcs -x numbers them; the filter matches\nnumbers, names, SKU IDs, KMS item names and GVLKs.")
			return 0
		default:
			if query != "" {
				fmt.Fprintln(os.Stderr, "kmsd products: one filter at most")
				return 2
			}
			query = a
		}
	}
	t := products.Builtin()
	idx := t.Filter(query)
	if asJSON {
		type row struct {
			Number   int    `json:"number"`
			Name     string `json:"name"`
			SKU      string `json:"sku_id"`
			KMSID    string `json:"kms_id"`
			KMSName  string `json:"kms_name"`
			App      string `json:"application"`
			Protocol string `json:"protocol"`
			NPolicy  uint32 `json:"n_policy"`
			GVLK     string `json:"gvlk,omitempty"`
			CSVLK    string `json:"csvlk"`
			Retail   bool   `json:"retail"`
			Preview  bool   `json:"preview"`
		}
		rows := make([]row, 0, len(idx))
		for _, i := range idx {
			p := &t.Products[i]
			k := &t.KMSItems[p.KMS]
			rows = append(rows, row{p.Number, p.Name, p.SKU.String(), k.ID.String(), k.Name, t.Apps[k.App].Name,
				fmt.Sprintf("%d.0", k.Protocol), k.NPolicy, p.GVLK, t.CSVLKs[k.CSVLK].IniName, k.Retail, k.Preview})
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return 1
		}
		return 0
	}
	for _, i := range idx {
		p := &t.Products[i]
		k := &t.KMSItems[p.KMS]
		gvlk := p.GVLK
		if gvlk == "" {
			gvlk = "-"
		}
		fmt.Printf("%3d  %-70s  V%d  N=%-2d  %s\n", p.Number, p.Name, k.Protocol, k.NPolicy, gvlk)
	}
	if len(idx) == 0 {
		fmt.Fprintf(os.Stderr, "kmsd products: nothing matches %q\n", query)
		return 1
	}
	return 0
}

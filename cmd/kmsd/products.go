package main

import (
	"encoding/json"
	"fmt"
	"os"

	"kmsd/internal/products"
)

func productsMain(args []string) int {
	asJSON := false
	query, export, out, from := "", "", "", ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			if i+1 < len(args) {
				i++
				return args[i]
			}
			fmt.Fprintf(os.Stderr, "kmsd products: %s needs an argument\n", a)
			os.Exit(2)
			return ""
		}
		switch a {
		case "--json":
			asJSON = true
		case "--export":
			export = next()
		case "-o", "--output":
			out = next()
		case "-j", "--data":
			from = next()
		case "-h", "--help":
			fmt.Println(productsUsage)
			return 0
		default:
			if query != "" {
				fmt.Fprintln(os.Stderr, "kmsd products: one filter at most")
				return 2
			}
			query = a
		}
	}
	t, _, err := loadTable(from)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd products: %v\n", err)
		return 1
	}
	if export != "" {
		return exportTable(t, export, out)
	}
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

const productsUsage = `Usage: kmsd products [filter] [--json] [-j FILE]
       kmsd products --export kmd|xml|json [-o FILE] [-j FILE]

Lists the products numbered as vlmcs -x numbers them; the filter matches
numbers, names, SKU IDs, KMS item names and GVLKs. --export writes the table
as a vlmcsd.kmd binary, a KmsDataBase.xml or kmsd's JSON form (to standard
output unless -o is given). -j reads the table from such a file instead of
the built-in one.`

func exportTable(t *products.Table, format, out string) int {
	var data []byte
	var err error
	switch format {
	case "kmd":
		data, err = t.EncodeKMD()
	case "xml":
		data, err = t.EncodeXML()
	case "json":
		data, err = t.EncodeJSON()
	default:
		fmt.Fprintf(os.Stderr, "kmsd products: --export %q: use kmd, xml or json\n", format)
		return 2
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd products: %v\n", err)
		return 1
	}
	if out == "" || out == "-" {
		_, err = os.Stdout.Write(data)
	} else {
		err = os.WriteFile(out, data, 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd products: %v\n", err)
		return 1
	}
	return 0
}

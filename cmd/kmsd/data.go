package main

import (
	"bytes"
	"fmt"
	"os"

	"kmsd/internal/products"
)

// loadTable returns the built-in product table, or the one in path: a
// vlmcsd.kmd binary, a KmsDataBase.xml or kmsd's JSON form, told apart by
// content. ndr64 is the KMD header's "NDR64 on" flag (true otherwise).
func loadTable(path string) (t *products.Table, ndr64 bool, err error) {
	if path == "" || path == "-" {
		return products.Builtin(), true, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("product data: %w", err)
	}
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	switch {
	case bytes.HasPrefix(data, []byte("KMD\x00")):
		t, info, err := products.DecodeKMD(data)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return t, info.NDR64, nil
	case bytes.HasPrefix(trimmed, []byte("<")):
		t, err = products.ReadXML(data)
	case bytes.HasPrefix(trimmed, []byte("{")):
		t, err = products.ReadJSON(data)
	default:
		return nil, false, fmt.Errorf("%s: not a vlmcsd.kmd, KmsDataBase.xml or kmsd JSON product file", path)
	}
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	return t, true, nil
}

func csvlkIniNames(t *products.Table) []string {
	n := make([]string, len(t.CSVLKs))
	for i, k := range t.CSVLKs {
		n[i] = k.IniName
	}
	return n
}

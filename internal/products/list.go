package products

import (
	"bufio"
	"fmt"
	"io"
)

// listWidth is the line width vlmcs -x assumes when standard output is not
// a terminal (kms-products-vlmcsd.md §6).
const listWidth = 80

// WriteList writes the product list exactly as `vlmcs -x` prints it when
// standard output is not a terminal (kms-products-vlmcsd.md §6): a heading,
// an empty line, each product as "%3d = " and its name padded with spaces
// to the longest name plus four, laid out column by column in as many
// columns of longest name + 10 characters as fit in 80 (at least one), and
// a final empty line.
func (t *Table) WriteList(w io.Writer) error {
	return t.writeList(w, listWidth)
}

// writeList is WriteList for a given terminal width.
func (t *Table) writeList(w io.Writer, width int) error {
	longest := 0
	for _, p := range t.Products {
		longest = max(longest, len(p.Name))
	}
	cols := max(width/(longest+10), 1)
	rows := (len(t.Products) + cols - 1) / cols
	bw := bufio.NewWriter(w)
	fmt.Fprint(bw, "You may use these product names or numbers:\n\n")
	for r := range rows {
		for c := range cols {
			if i := c*rows + r; i < len(t.Products) {
				fmt.Fprintf(bw, "%3d = %-*s", i+1, longest+4, t.Products[i].Name)
			}
		}
		bw.WriteByte('\n')
	}
	bw.WriteByte('\n')
	return bw.Flush()
}

package web

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"kmsd/internal/products"
)

// Products is the data of /products and /api/products.
type Products struct {
	Host     string         `json:"host"`
	Port     int            `json:"port"`
	Query    string         `json:"q,omitempty"`
	App      string         `json:"application,omitempty"`
	Products []ProductRow   `json:"products"`
	Apps     []string       `json:"-"`
	Groups   []productGroup `json:"-"`
}

type productGroup struct {
	Name     string
	Products []ProductRow
}

// ProductRow is one numbered product with the commands that point a
// client at this host.
type ProductRow struct {
	Number      int       `json:"number"`
	Name        string    `json:"name"`
	SKUID       string    `json:"sku_id"`
	KMSID       string    `json:"kms_id"`
	KMSName     string    `json:"kms_name"`
	Application string    `json:"application"`
	Protocol    string    `json:"protocol"`
	NPolicy     uint32    `json:"n_policy"`
	GVLK        string    `json:"gvlk"`
	Retail      bool      `json:"retail"`
	Preview     bool      `json:"preview"`
	Office      bool      `json:"office"`
	Commands    []Command `json:"commands"`
}

// Command is one line to type on the client, with what it does.
type Command struct {
	Text string `json:"text"`
	Does string `json:"does"`
}

// defaultKMSPort is the KMS TCP port.
const defaultKMSPort = 1688

func (s *Server) productsPage(_ context.Context, r *http.Request, _ *view) (any, error) {
	host, port := s.kmsHost(r)
	return s.products(host, port, strings.TrimSpace(r.URL.Query().Get("q")), r.URL.Query().Get("app")), nil
}

// products lists the table's products matching a filter (Table.Filter)
// and an application name, with commands for host and port.
func (s *Server) products(host string, port int, query, app string) *Products {
	p := &Products{Host: host, Port: port, Query: query, App: app, Products: []ProductRow{}}
	t := s.Table
	if t == nil {
		return p
	}
	for _, a := range t.Apps {
		p.Apps = append(p.Apps, a.Name)
	}
	group := map[string]int{}
	for _, i := range t.Filter(query) {
		row := productRow(t, &t.Products[i], host, port)
		if app != "" && row.Application != app {
			continue
		}
		p.Products = append(p.Products, row)
		g, ok := group[row.Application]
		if !ok {
			g = len(p.Groups)
			group[row.Application] = g
			p.Groups = append(p.Groups, productGroup{Name: row.Application})
		}
		p.Groups[g].Products = append(p.Groups[g].Products, row)
	}
	return p
}

func productRow(t *products.Table, p *products.Product, host string, port int) ProductRow {
	it := &t.KMSItems[p.KMS]
	app := t.Apps[it.App].Name
	row := ProductRow{Number: p.Number, Name: p.Name, SKUID: p.SKU.String(), KMSID: it.ID.String(), KMSName: it.Name,
		Application: app, Protocol: fmt.Sprintf("%d.0", it.Protocol), NPolicy: it.NPolicy, GVLK: p.GVLK,
		Retail: it.Retail, Preview: it.Preview, Office: strings.HasPrefix(app, "Office")}
	if row.Office {
		row.Commands = officeCommands(osppPath(app, it.Name), p.GVLK, host, port)
	} else {
		row.Commands = windowsCommands(p.GVLK, host, port)
	}
	return row
}

func windowsCommands(gvlk, host string, port int) []Command {
	var c []Command
	if gvlk != "" {
		c = append(c, Command{"slmgr /ipk " + gvlk, "install the KMS client setup key"})
	}
	return append(c,
		Command{"slmgr /skms " + net.JoinHostPort(host, strconv.Itoa(port)), "use this KMS host"},
		Command{"slmgr /ato", "activate now"})
}

// osppPath is where ospp.vbs lives for an Office version: Office14 for
// 2010, Office15 for 2013, Office16 for 2016 and later (64-bit Office, or
// 32-bit Office on 32-bit Windows; otherwise "Program Files (x86)").
func osppPath(app, kmsItem string) string {
	dir := "Office16"
	switch {
	case app == "Office 2010":
		dir = "Office14"
	case strings.Contains(kmsItem, "2013"):
		dir = "Office15"
	}
	return `C:\Program Files\Microsoft Office\` + dir + `\ospp.vbs`
}

func officeCommands(ospp, gvlk, host string, port int) []Command {
	script := `cscript "` + ospp + `" `
	var c []Command
	if gvlk != "" {
		c = append(c, Command{script + "/inpkey:" + gvlk, "install the KMS client setup key"})
	}
	return append(c,
		Command{script + "/sethst:" + host, "use this KMS host"},
		Command{script + "/setprt:" + strconv.Itoa(port), "on this port"},
		Command{script + "/act", "activate now"})
}

// kmsHost is the KMS host and port for the commands: HostAddr, with an
// empty or wildcard host replaced by the name the browser used for the
// dashboard.
func (s *Server) kmsHost(r *http.Request) (string, int) {
	host, portText, err := net.SplitHostPort(s.HostAddr)
	if err != nil {
		host, portText = s.HostAddr, ""
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port <= 0 || port > 65535 {
		port = defaultKMSPort
	}
	if a, err := netip.ParseAddr(host); host == "" || err == nil && a.IsUnspecified() {
		host = r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
	}
	return host, port
}

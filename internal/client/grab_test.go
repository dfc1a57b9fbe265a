package client

import "testing"

func TestMergeGrabFile(t *testing.T) {
	names := []string{"Windows", "Office2010", "Office2013"}
	win := GrabLine{CSVLK: "Windows", EPID: "03612-04919-007-316797-03-3179-20348.0000-2472024", HWID: [8]byte{0x3A, 0x1C, 0x04, 0x96, 0x00, 0xB6, 0x00, 0x76}, HasHWID: true}
	o10 := GrabLine{CSVLK: "Office2010", EPID: "03612-00096-214-757608-03-3179-20348.0000-2622021"}
	cases := []struct {
		name, old string
		lines     []GrabLine
		want      string
	}{
		{"new file", "", []GrabLine{win, o10},
			"Windows = 03612-04919-007-316797-03-3179-20348.0000-2472024 / 3A 1C 04 96 00 B6 00 76\nOffice2010 = 03612-00096-214-757608-03-3179-20348.0000-2622021\n"},
		{"nothing grabbed", "", nil, ""},
		{"replace, keep others, drop duplicates",
			"# my hosts\nwindows = old\nOffice2013 = keep-me\nWINDOWS = duplicate\nLogFile = x\n",
			[]GrabLine{win, o10},
			"# my hosts\nWindows = 03612-04919-007-316797-03-3179-20348.0000-2472024 / 3A 1C 04 96 00 B6 00 76\nOffice2013 = keep-me\nLogFile = x\nOffice2010 = 03612-00096-214-757608-03-3179-20348.0000-2622021\n"},
	}
	for _, tc := range cases {
		if got := MergeGrabFile(tc.old, tc.lines, names); got != tc.want {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

module kmsd

go 1.26

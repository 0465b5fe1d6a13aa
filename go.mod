module github.com/opensoul/opensoul

go 1.26.8

package guest

import "testing"

var benchIn = []byte(`{"v":1,"op":"check","type":"api_key","secret":"sk-ant-api03-Zq7Xk2Lm9Pw4Rt6Yv8Ns3Bd5Hf_Gj-Cc1Zq7Xk2Lm9Pw4Rt6Yv8Ns3Bd5Hf_Gj-Cc1Zq7Xk2Lm9Pw4Rt6Yv8Ns3Bd5Hf_Gj-Cc1Zq7Xk","expiresAt":null,"now":1}`)

func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		Parse(benchIn)
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	for b.Loop() {
		decodeRequest(benchIn)
	}
}

{{/* Number and string formats of the generated rules and dashboards (files/). Each mirrors one
     Python formatter of the alerts and dashboards packages (deploy/templating.py names them);
     tests render the chart and the Python generators with the same policy and compare. */}}

{{/* number(): a whole value without ".0", else the shortest repr (5 -> 5, 0.85 -> 0.85). */}}
{{- define "kvscale.fmt.num" -}}
{{- $v := float64 . -}}
{{- if eq $v (floor $v) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end -}}
{{- end -}}

{{/* Python's format(v, "g"): six significant digits. */}}
{{- define "kvscale.fmt.g" -}}{{ printf "%.6g" (float64 .) }}{{- end -}}

{{/* format(v, ".0%") and f"{v * 100:g}%". */}}
{{- define "kvscale.fmt.pct0" -}}{{ printf "%.0f%%" (mulf . 100) }}{{- end -}}
{{- define "kvscale.fmt.pctg" -}}{{ printf "%.6g%%" (mulf . 100) }}{{- end -}}

{{/* duration(): whole seconds in the largest exact unit (300 -> 5m). */}}
{{- define "kvscale.fmt.duration" -}}
{{- $s := int64 . -}}
{{- if eq $s 0 }}0s
{{- else if eq (mod $s 86400) 0 }}{{ div $s 86400 }}d
{{- else if eq (mod $s 3600) 0 }}{{ div $s 3600 }}h
{{- else if eq (mod $s 60) 0 }}{{ div $s 60 }}m
{{- else }}{{ $s }}s
{{- end -}}
{{- end -}}

{{- define "kvscale.fmt.int" -}}{{ int64 . }}{{- end -}}

{{/* A float as Python's json writes it: 5.0 stays "5.0". */}}
{{- define "kvscale.fmt.jsonfloat" -}}
{{- $v := float64 . -}}
{{- if eq $v (floor $v) }}{{ int64 $v }}.0{{ else }}{{ $v }}{{ end -}}
{{- end -}}

{{/* A string inside a JSON string. */}}
{{- define "kvscale.fmt.str" -}}{{ . | replace "\\" "\\\\" | replace "\"" "\\\"" }}{{- end -}}

{{/* A Kubernetes Quantity the way the HPA reads it: milli-units rounded up (0.8 -> 800m, 5 -> 5). */}}
{{- define "kvscale.quantity" -}}
{{- $m := int64 (ceil (mulf . 1000)) -}}
{{- if eq (mod $m 1000) 0 }}{{ div $m 1000 }}{{ else }}{{ $m }}m{{ end -}}
{{- end -}}

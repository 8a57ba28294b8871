{{/*
Sidecar mode: templates another chart includes to run Mnemo in its own pods, next to its app container, which then
calls http://localhost:8080 instead of the LLM API. Add this chart as a dependency (with standalone.enabled: false
and its Redis settings) and pass its context, .Subcharts.mnemo:

  initContainers:
    {{- include "mnemo.sidecar.initContainer" .Subcharts.mnemo | nindent 4 }}
  volumes:
    {{- include "mnemo.sidecar.volumes" .Subcharts.mnemo | nindent 4 }}

The subchart still renders the ConfigMap and Secret the container reads. See charts/examples/chat-app.
*/}}

{{/*
As a native sidecar (Kubernetes 1.29+): an init container that keeps running. Kubernetes starts it before the app and
stops it after the app, so the app's last requests still have memory and Mnemo can drain its write-back queue.
*/}}
{{- define "mnemo.sidecar.initContainer" -}}
- {{ include "mnemo.container" . | nindent 2 | trim }}
  restartPolicy: Always
{{- end }}

{{/*
As a plain container in the pod's containers list (older clusters). Kubernetes then stops it together with the app.
*/}}
{{- define "mnemo.sidecar.container" -}}
- {{ include "mnemo.container" . | nindent 2 | trim }}
{{- end }}

{{- define "mnemo.sidecar.volumes" -}}
{{ include "mnemo.volumes" . }}
{{- end }}

{{/*
Pod annotations that roll the pods when Mnemo's settings change.
*/}}
{{- define "mnemo.sidecar.podAnnotations" -}}
checksum/mnemo-config: {{ include "mnemo.configData" . | sha256sum }}
{{- end }}

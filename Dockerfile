# syntax=docker/dockerfile:1
# Mnemo: build with the .NET SDK, run on the chiseled ASP.NET runtime (no shell, no package manager).
#   docker build -t mnemo .        (or: buildah bud -t mnemo .)

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
# Restore from the project files alone, so this layer stays cached until a package or the SDK pin changes.
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY proxy/Mnemo.Proxy.csproj proxy/
RUN dotnet restore proxy/Mnemo.Proxy.csproj
COPY proxy/ proxy/
RUN dotnet publish proxy/Mnemo.Proxy.csproj --configuration Release --no-restore --output /app -p:UseAppHost=false

FROM mcr.microsoft.com/dotnet/aspnet:10.0-noble-chiseled
WORKDIR /app
COPY --from=build /app .
# Kestrel's endpoints come from Mnemo's own defaults (proxy 8080, management 9090); the image's port variable would
# only produce a warning that it is overridden.
ENV ASPNETCORE_HTTP_PORTS=""
# The .NET images' unprivileged "app" user, by number so Kubernetes can verify runAsNonRoot.
USER 1654
EXPOSE 8080 9090
ENTRYPOINT ["dotnet", "Mnemo.Proxy.dll"]

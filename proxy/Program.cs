using Mnemo.Proxy.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddMnemo();

var app = builder.Build();
app.MapMnemo();
app.Run();

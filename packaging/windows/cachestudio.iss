; RECIPE, NOT RUN HERE: Inno Setup script for the Windows installer, used by
; packaging/release-workflow.yml on a Windows runner:
;   iscc /DVersion=0.1.0 /DBundle=build\bundle\cachestudio /DIcon=build\cachestudio.ico /Odist packaging\windows\cachestudio.iss
; Installs the PyInstaller one-folder bundle per user (no administrator rights needed),
; with a Start menu entry and an uninstaller.
#ifndef Version
  #define Version "0.1.0"
#endif
#ifndef Bundle
  #define Bundle "..\..\build\bundle\cachestudio"
#endif
#ifndef Icon
  #define Icon "..\..\build\cachestudio.ico"
#endif

[Setup]
AppId={{5B7F2C1E-8A3D-4F6B-9C2E-CAC4E57D1A10}
AppName=Cache Studio
AppVersion={#Version}
AppPublisher=The Cache Studio contributors
DefaultDirName={localappdata}\Programs\Cache Studio
DefaultGroupName=Cache Studio
PrivilegesRequired=lowest
OutputBaseFilename=CacheStudio-{#Version}-setup
SetupIconFile={#Icon}
UninstallDisplayIcon={app}\cachestudio.exe
Compression=lzma2
SolidCompression=yes
ArchitecturesInstallIn64BitMode=x64compatible
ArchitecturesAllowed=x64compatible
LicenseFile=..\..\LICENSE

[Files]
Source: "{#Bundle}\*"; DestDir: "{app}"; Flags: recursesubdirs createallsubdirs ignoreversion

[Icons]
Name: "{group}\Cache Studio"; Filename: "{app}\cachestudio.exe"
Name: "{group}\Uninstall Cache Studio"; Filename: "{uninstallexe}"

[Run]
Filename: "{app}\cachestudio.exe"; Description: "Start Cache Studio"; Flags: nowait postinstall skipifsilent
